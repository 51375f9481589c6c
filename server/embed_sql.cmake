# Writes a C file holding the sql/NNN_name.sql migrations, in order, so the
# server binary carries the schema it expects. Script mode:
#   cmake -DSQL_DIR=... -DOUT=... -P embed_sql.cmake
file(GLOB files RELATIVE ${SQL_DIR} ${SQL_DIR}/[0-9][0-9][0-9]_*.sql)
list(SORT files)
set(c "/* Generated from the sql/ migrations by server/embed_sql.cmake. */\n")
string(APPEND c "#include \"db.h\"\n\n")
set(table "")
set(count 0)
foreach(f ${files})
	string(REGEX MATCH "^([0-9]+)_(.*)\\.sql$" m ${f})
	set(version ${CMAKE_MATCH_1})
	set(name ${CMAKE_MATCH_2})
	math(EXPR version "${version}")	# drop leading zeros
	file(READ ${SQL_DIR}/${f} hex HEX)
	string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
	string(APPEND c "static const char sql_${version}[] = {${bytes}0};\n")
	string(APPEND table "\t{ ${version}, \"${name}\", sql_${version} },\n")
	math(EXPR count "${count} + 1")
endforeach()
string(APPEND c "\nconst struct db_migration db_migrations[] = {\n${table}};\n")
string(APPEND c "const int db_migrations_count = ${count};\n")
file(WRITE ${OUT}.tmp "${c}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})

/*
 * remsimctl_server: the commands that talk to a running remsim-server
 * over its REST API (/api/v2): status, banks, clients, slotmaps, map,
 * unmap, move, events, and token issue/list/revoke. Human tables by
 * default, the server's JSON with --json (for scripts).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "remsimctl.h"

#define CTL_DEFAULT_SERVER "http://127.0.0.1:9997"

struct api_opts {
	const char *server;
	char *token;
	int json;
	/* filters and arguments of the individual commands */
	const char *bank, *client, *state, *kind, *since, *comment, *reason;
	const char *role, *id;
	long limit;
	int64_t ttl;
};

static const char api_common_help[] =
	"connection (every command below):\n"
	"  -s, --server URL     remsim-server's HTTP address (default $REMSIM_SERVER,\n"
	"                       else " CTL_DEFAULT_SERVER ")\n"
	"  -t, --token TOKEN    admin token (default $REMSIM_TOKEN)\n"
	"  -T, --token-file F   read the admin token from a file\n"
	"                       (default $REMSIM_TOKEN_FILE)\n"
	"  -j, --json           print the server's JSON instead of a table\n";

static void server_usage(FILE *out)
{
	fprintf(out,
		"usage: remsimctl status\n"
		"       remsimctl banks | clients\n"
		"       remsimctl slotmaps [--bank N] [--client N] [--state S]\n"
		"       remsimctl map BANK:SLOT CLIENT:SLOT\n"
		"       remsimctl unmap BANK:SLOT\n"
		"       remsimctl move CLIENT:SLOT BANK:SLOT\n"
		"       remsimctl events [--kind K] [--since ID|TIME] [--limit N]\n"
		"\n"
		"status    server health, agents online, mappings by state\n"
		"banks     every bank with its state; clients: every client slot\n"
		"slotmaps  the slot mappings (first 1000; filters narrow it)\n"
		"map       map a bank slot to a client slot\n"
		"unmap     delete the mapping of a bank slot\n"
		"move      give a client slot another bank slot, in one step\n"
		"events    the audit/event log, oldest first\n"
		"\n%s"
		"\n"
		"example:\n"
		"  export REMSIM_TOKEN=$(remsimctl token issue --key server.key "
		"--role admin --id 1)\n"
		"  remsimctl map 1:0 23:0 && remsimctl slotmaps --client 23\n"
		"\n"
		"exit status: 0 ok, 1 refused or failed (the reason on stderr), "
		"2 usage error\n", api_common_help);
}

static char *api_read_token_file(const char *path)
{
	char buf[1024];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return strdup(buf);
}

/* Parses the options every API command shares, plus its own. */
static int api_parse(const char *cmd, int argc, char **argv,
		     struct api_opts *o)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "token", required_argument, NULL, 't' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "bank", required_argument, NULL, 'b' },
		{ "client", required_argument, NULL, 'c' },
		{ "state", required_argument, NULL, 'S' },
		{ "kind", required_argument, NULL, 'k' },
		{ "since", required_argument, NULL, 'n' },
		{ "limit", required_argument, NULL, 'l' },
		{ "comment", required_argument, NULL, 'C' },
		{ "reason", required_argument, NULL, 'r' },
		{ "role", required_argument, NULL, 'R' },
		{ "id", required_argument, NULL, 'i' },
		{ "ttl", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *token_file = getenv("REMSIM_TOKEN_FILE");
	char *end;
	int c;

	o->server = getenv("REMSIM_SERVER") ? getenv("REMSIM_SERVER") :
		    CTL_DEFAULT_SERVER;
	o->token = getenv("REMSIM_TOKEN") ? strdup(getenv("REMSIM_TOKEN")) :
		   NULL;
	o->ttl = 30 * 86400;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:t:T:jb:c:S:k:n:l:C:r:R:i:L:h",
				longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->server = optarg;
			break;
		case 't':
			free(o->token);
			o->token = strdup(optarg);
			token_file = NULL;
			break;
		case 'T':
			token_file = optarg;
			free(o->token);
			o->token = NULL;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'b':
			o->bank = optarg;
			break;
		case 'c':
			o->client = optarg;
			break;
		case 'S':
			o->state = optarg;
			break;
		case 'k':
			o->kind = optarg;
			break;
		case 'n':
			o->since = optarg;
			break;
		case 'l':
			o->limit = strtol(optarg, &end, 10);
			if (*end || o->limit < 1 || o->limit > 1000)
				return ctl_usage_error(cmd, "bad --limit '%s' "
						       "(1..1000)", optarg);
			break;
		case 'C':
			o->comment = optarg;
			break;
		case 'r':
			o->reason = optarg;
			break;
		case 'R':
			o->role = optarg;
			break;
		case 'i':
			o->id = optarg;
			break;
		case 'L':
			if (ctl_parse_duration(optarg, &o->ttl) || !o->ttl)
				return ctl_usage_error(cmd, "bad --ttl '%s' "
						       "(N[s|m|h|d])", optarg);
			break;
		case 'h':
			server_usage(stdout);
			exit(CTL_EXIT_OK);
		default:
			return ctl_usage_error(cmd, "unknown option");
		}
	}
	if (token_file && !o->token) {
		o->token = api_read_token_file(token_file);
		if (!o->token) {
			ctl_error(cmd, "cannot read the token file %s", token_file);
			return CTL_EXIT_FAIL;
		}
	}
	return 0;
}

/*
 * One request; on success *out holds the decoded JSON (or NULL for an
 * empty answer). Prints the server's error and returns CTL_EXIT_FAIL.
 */
static int api_call(const char *cmd, const struct api_opts *o,
		    const char *method, const char *path, json_t *body,
		    json_t **out)
{
	struct ctl_http_answer ans;
	char err[300], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_error_t jerr;
	json_t *j = NULL;
	int rc;

	*out = NULL;
	rc = ctl_http_request(o->server, method, path, o->token, text, &ans, err,
			     sizeof(err));
	free(text);
	if (rc) {
		ctl_error(cmd, "%s", err);
		return CTL_EXIT_FAIL;
	}
	if (ans.len)
		j = json_loadb(ans.body, ans.len, 0, &jerr);
	if (ans.status >= 400) {
		json_t *e = json_object_get(j, "error");

		if (e)
			ctl_error(cmd, "%s (HTTP %d): %s",
				  json_string_value(json_object_get(e, "code")),
				  ans.status,
				  json_string_value(json_object_get(e, "message")));
		else
			ctl_error(cmd, "HTTP %d from %s%s", ans.status,
				  o->server, path);
		if (ans.status == 401 && !o->token)
			fprintf(stderr, "(give an admin token with --token, "
				"--token-file or $REMSIM_TOKEN)\n");
		json_decref(j);
		ctl_http_answer_free(&ans);
		return CTL_EXIT_FAIL;
	}
	if (ans.len && !j) {
		ctl_error(cmd, "the server's answer is not JSON: %s", jerr.text);
		ctl_http_answer_free(&ans);
		return CTL_EXIT_FAIL;
	}
	ctl_http_answer_free(&ans);
	*out = j;
	return CTL_EXIT_OK;
}

static void print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s)
		puts(s);
	free(s);
}

/* ---- a tiny table printer ---- */

#define TABLE_COLS 8

struct table {
	int ncols;
	size_t width[TABLE_COLS];
	char **cells;	/* rows * ncols */
	size_t rows, cap;
};

static void table_add(struct table *t, const char *const *cells)
{
	if (t->rows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 32;
		char **p = realloc(t->cells, cap * t->ncols * sizeof(char *));

		if (!p)
			return;
		t->cells = p;
		t->cap = cap;
	}
	for (int c = 0; c < t->ncols; c++) {
		const char *v = cells[c] ? cells[c] : "-";
		size_t len = strlen(v);

		t->cells[t->rows * t->ncols + c] = strdup(v);
		if (len > t->width[c])
			t->width[c] = len;
	}
	t->rows++;
}

static void table_print(struct table *t)
{
	for (size_t r = 0; r < t->rows; r++) {
		for (int c = 0; c < t->ncols; c++) {
			const char *v = t->cells[r * t->ncols + c];

			if (c == t->ncols - 1)
				printf("%s\n", v ? v : "");
			else
				printf("%-*s  ", (int)t->width[c], v ? v : "");
			free(t->cells[r * t->ncols + c]);
		}
	}
	free(t->cells);
}

/* JSON value as table text: strings as they are, null as "-". */
static const char *jtext(const json_t *v, char *buf, size_t len)
{
	if (!v || json_is_null(v))
		return "-";
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_true(v))
		return "yes";
	if (json_is_false(v))
		return "no";
	if (json_is_integer(v)) {
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
		return buf;
	}
	return "?";
}

static const char *jpair(const json_t *o, const char *a, const char *b,
			 char *buf, size_t len)
{
	if (!json_is_object(o))
		return "-";
	snprintf(buf, len, "%lld:%lld",
		 (long long)json_integer_value(json_object_get(o, a)),
		 (long long)json_integer_value(json_object_get(o, b)));
	return buf;
}

/* "1:0" -> 1, 0 within 0..1023. */
static int parse_slot(const char *s, long *id, long *slot)
{
	char *end;

	*id = strtol(s, &end, 10);
	if (end == s || *end != ':')
		return -1;
	s = end + 1;
	*slot = strtol(s, &end, 10);
	if (end == s || *end || *id < 0 || *id > 1023 || *slot < 0 ||
	    *slot > 1023)
		return -1;
	return 0;
}

/* ---- the commands ---- */

static int server_status(const char *cmd, struct api_opts *o)
{
	json_t *j, *maps;
	char b1[32], b2[32];
	int rc = api_call(cmd, o, "GET", "/api/v2/health", NULL, &j);

	if (rc)
		return rc;
	if (o->json) {
		print_json(j);
	} else {
		maps = json_object_get(j, "slotmaps");
		printf("server:   %s %s (%s)\n", o->server,
		       jtext(json_object_get(j, "version"), b1, sizeof(b1)),
		       jtext(json_object_get(j, "status"), b2, sizeof(b2)));
		printf("database: %s\n", jtext(json_object_get(j, "database"),
					     b1, sizeof(b1)));
		printf("auth:     %s\n", jtext(json_object_get(j, "auth"), b1,
					     sizeof(b1)));
		printf("banks online:   %s\n",
		       jtext(json_object_get(j, "banks_online"), b1, sizeof(b1)));
		printf("clients online: %s\n",
		       jtext(json_object_get(j, "clients_online"), b1,
			     sizeof(b1)));
		printf("slot mappings:  %s (", jtext(json_object_get(maps,
				"total"), b1, sizeof(b1)));
		printf("ACTIVE %s, ", jtext(json_object_get(maps, "ACTIVE"), b1,
					    sizeof(b1)));
		printf("NEW %s, ", jtext(json_object_get(maps, "NEW"), b1,
					 sizeof(b1)));
		printf("UNACKNOWLEDGED %s)\n",
		       jtext(json_object_get(maps, "UNACKNOWLEDGED"), b1,
			     sizeof(b1)));
	}
	json_decref(j);
	return CTL_EXIT_OK;
}

static int server_banks(const char *cmd, struct api_opts *o)
{
	struct table t = { .ncols = 6 };
	const char *head[] = { "BANK", "ONLINE", "PEER", "SLOTS", "MAPPINGS",
			       "SOFTWARE" };
	json_t *j, *b;
	size_t i;
	int rc = api_call(cmd, o, "GET", "/api/v2/banks", NULL, &j);

	if (rc)
		return rc;
	if (o->json) {
		print_json(j);
		json_decref(j);
		return CTL_EXIT_OK;
	}
	table_add(&t, head);
	json_array_foreach(json_object_get(j, "banks"), i, b) {
		char c0[16], c1[8], c3[16], c4[16], c5[80], c2[80];
		const json_t *comp = json_object_get(b, "component");
		const char *sw = json_string_value(json_object_get(comp,
								   "software"));
		const char *ver = json_string_value(json_object_get(comp,
								    "swVersion"));
		const char *row[6];

		/* names are at most 32 characters (RSPRO ComponentName) */
		snprintf(c5, sizeof(c5), "%.32s %.32s", sw ? sw : "-",
			 ver ? ver : "");
		row[0] = jtext(json_object_get(b, "bank_id"), c0, sizeof(c0));
		row[1] = jtext(json_object_get(b, "online"), c1, sizeof(c1));
		row[2] = jtext(json_object_get(b, "peer"), c2, sizeof(c2));
		row[3] = jtext(json_object_get(b, "num_slots"), c3, sizeof(c3));
		row[4] = jtext(json_object_get(b, "slotmaps"), c4, sizeof(c4));
		row[5] = comp ? c5 : "-";
		table_add(&t, row);
	}
	table_print(&t);
	json_decref(j);
	return CTL_EXIT_OK;
}

static int server_clients(const char *cmd, struct api_opts *o)
{
	struct table t = { .ncols = 5 };
	const char *head[] = { "CLIENT", "ONLINE", "PEER", "MAPPED TO",
			       "STATE" };
	json_t *j, *c, *s;
	size_t i, k;
	int rc = api_call(cmd, o, "GET", "/api/v2/clients", NULL, &j);

	if (rc)
		return rc;
	if (o->json) {
		print_json(j);
		json_decref(j);
		return CTL_EXIT_OK;
	}
	table_add(&t, head);
	json_array_foreach(json_object_get(j, "clients"), i, c) {
		json_array_foreach(json_object_get(c, "slots"), k, s) {
			char c0[24], c1[8], c2[80], c3[24], c4[24];
			const json_t *m = json_object_get(s, "mapping");
			const char *row[5];

			snprintf(c0, sizeof(c0), "%lld:%lld",
				 (long long)json_integer_value(
					 json_object_get(c, "client_id")),
				 (long long)json_integer_value(
					 json_object_get(s, "slot")));
			row[0] = c0;
			row[1] = jtext(json_object_get(s, "online"), c1,
				       sizeof(c1));
			row[2] = jtext(json_object_get(s, "peer"), c2, sizeof(c2));
			row[3] = jpair(m, "bank_id", "bank_slot", c3, sizeof(c3));
			row[4] = jtext(json_object_get(m, "state"), c4, sizeof(c4));
			table_add(&t, row);
		}
	}
	table_print(&t);
	json_decref(j);
	return CTL_EXIT_OK;
}

static void print_slotmaps(const json_t *list)
{
	struct table t = { .ncols = 6 };
	const char *head[] = { "ID", "BANK SLOT", "CLIENT SLOT", "STATE",
			       "BANK ONLINE", "CLIENT ONLINE" };
	json_t *m;
	size_t i;

	table_add(&t, head);
	json_array_foreach(list, i, m) {
		char c0[24], c1[24], c2[24], c3[24], c4[8], c5[8];
		const char *row[6] = {
			jtext(json_object_get(m, "id"), c0, sizeof(c0)),
			jpair(json_object_get(m, "bank"), "bank_id", "slot", c1,
			      sizeof(c1)),
			jpair(json_object_get(m, "client"), "client_id", "slot",
			      c2, sizeof(c2)),
			jtext(json_object_get(m, "state"), c3, sizeof(c3)),
			jtext(json_object_get(m, "bank_online"), c4, sizeof(c4)),
			jtext(json_object_get(m, "client_online"), c5,
			      sizeof(c5)),
		};

		table_add(&t, row);
	}
	table_print(&t);
}

/* Appends "&key=value" (value percent-encoded) to a query string. */
static void query_add(char *q, size_t len, const char *key, const char *val)
{
	size_t n = strlen(q);

	if (!val)
		return;
	n += snprintf(q + n, n < len ? len - n : 0, "%s%s=", n ? "&" : "?",
		      key);
	for (const unsigned char *p = (const unsigned char *)val;
	     *p && n + 4 < len; p++) {
		if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= 'A' && *p <= 'Z') || strchr("-._~:", *p))
			q[n++] = (char)*p;
		else
			n += snprintf(q + n, len - n, "%%%02X", *p);
	}
	q[n] = '\0';
}

static int server_slotmaps(const char *cmd, struct api_opts *o)
{
	char path[512] = "/api/v2/slotmaps", q[400] = "", lim[16];
	json_t *j;
	int rc;

	snprintf(lim, sizeof(lim), "%ld", o->limit ? o->limit : 1000);
	query_add(q, sizeof(q), "bank_id", o->bank);
	query_add(q, sizeof(q), "client_id", o->client);
	query_add(q, sizeof(q), "state", o->state);
	query_add(q, sizeof(q), "limit", lim);
	strncat(path, q, sizeof(path) - strlen(path) - 1);
	rc = api_call(cmd, o, "GET", path, NULL, &j);
	if (rc)
		return rc;
	if (o->json)
		print_json(j);
	else
		print_slotmaps(json_object_get(j, "slotmaps"));
	json_decref(j);
	return CTL_EXIT_OK;
}

static json_t *slot_json(const char *idkey, long id, long slot)
{
	return json_pack("{s:i,s:i}", idkey, (json_int_t)id, "slot",
			 (json_int_t)slot);
}

static int server_map(const char *cmd, struct api_opts *o, int argc,
		      char **argv, int move)
{
	long b, bs, c, cs;
	const char *bank_arg = argv[move ? optind + 1 : optind];
	const char *client_arg = argv[move ? optind : optind + 1];
	json_t *body, *j;
	int rc;

	if (argc - optind != 2)
		return ctl_usage_error(cmd, move ? "expected CLIENT:SLOT "
				       "BANK:SLOT" : "expected BANK:SLOT "
				       "CLIENT:SLOT");
	if (parse_slot(bank_arg, &b, &bs))
		return ctl_usage_error(cmd, "bad bank slot '%s' (BANK:SLOT, "
				       "0..1023 each)", bank_arg);
	if (parse_slot(client_arg, &c, &cs))
		return ctl_usage_error(cmd, "bad client slot '%s' (CLIENT:SLOT, "
				       "0..1023 each)", client_arg);
	body = json_pack("{s:o,s:o}", "bank", slot_json("bank_id", b, bs),
			 "client", slot_json("client_id", c, cs));
	rc = api_call(cmd, o, "POST", move ? "/api/v2/slotmaps/move" :
			  "/api/v2/slotmaps", body, &j);
	json_decref(body);
	if (rc)
		return rc;
	if (o->json)
		print_json(j);
	else if (move)
		printf("client %ld:%ld moved to bank slot %ld:%ld\n", c, cs, b,
		       bs);
	else
		printf("mapped bank slot %ld:%ld to client %ld:%ld\n", b, bs, c,
		       cs);
	json_decref(j);
	return CTL_EXIT_OK;
}

static int server_unmap(const char *cmd, struct api_opts *o, int argc,
			char **argv)
{
	char path[64];
	long b, bs;
	json_t *j;
	int rc;

	if (argc - optind != 1 || parse_slot(argv[optind], &b, &bs))
		return ctl_usage_error(cmd, "expected BANK:SLOT");
	snprintf(path, sizeof(path), "/api/v2/slotmaps/%ld/%ld", b, bs);
	rc = api_call(cmd, o, "DELETE", path, NULL, &j);
	if (rc)
		return rc;
	json_decref(j);
	if (!o->json)
		printf("unmapped bank slot %ld:%ld\n", b, bs);
	return CTL_EXIT_OK;
}

static int server_events(const char *cmd, struct api_opts *o)
{
	char path[512] = "/api/v2/events", q[400] = "", lim[16];
	struct table t = { .ncols = 5 };
	const char *head[] = { "ID", "TIME", "SEVERITY", "KIND", "MESSAGE" };
	json_t *j, *e;
	size_t i;
	int rc;

	if (o->limit) {
		snprintf(lim, sizeof(lim), "%ld", o->limit);
		query_add(q, sizeof(q), "limit", lim);
	}
	query_add(q, sizeof(q), "kind", o->kind);
	query_add(q, sizeof(q), "since", o->since);
	query_add(q, sizeof(q), "bank_id", o->bank);
	query_add(q, sizeof(q), "client_id", o->client);
	strncat(path, q, sizeof(path) - strlen(path) - 1);
	rc = api_call(cmd, o, "GET", path, NULL, &j);
	if (rc)
		return rc;
	if (o->json) {
		print_json(j);
		json_decref(j);
		return CTL_EXIT_OK;
	}
	table_add(&t, head);
	json_array_foreach(json_object_get(j, "events"), i, e) {
		char c0[24], c1[40], c2[16], c3[64], c4[320];
		const char *row[5] = {
			jtext(json_object_get(e, "event_id"), c0, sizeof(c0)),
			jtext(json_object_get(e, "at"), c1, sizeof(c1)),
			jtext(json_object_get(e, "severity"), c2, sizeof(c2)),
			jtext(json_object_get(e, "kind"), c3, sizeof(c3)),
			jtext(json_object_get(e, "message"), c4, sizeof(c4)),
		};

		table_add(&t, row);
	}
	table_print(&t);
	json_decref(j);
	return CTL_EXIT_OK;
}

int cmd_server(int argc, char **argv)
{
	const char *cmd = argv[0];
	struct api_opts o = { 0 };
	int rc = api_parse(cmd, argc, argv, &o);

	if (rc)
		goto out;
	if (!strcmp(cmd, "status"))
		rc = server_status(cmd, &o);
	else if (!strcmp(cmd, "banks"))
		rc = server_banks(cmd, &o);
	else if (!strcmp(cmd, "clients"))
		rc = server_clients(cmd, &o);
	else if (!strcmp(cmd, "slotmaps"))
		rc = server_slotmaps(cmd, &o);
	else if (!strcmp(cmd, "map"))
		rc = server_map(cmd, &o, argc, argv, 0);
	else if (!strcmp(cmd, "move"))
		rc = server_map(cmd, &o, argc, argv, 1);
	else if (!strcmp(cmd, "unmap"))
		rc = server_unmap(cmd, &o, argc, argv);
	else if (!strcmp(cmd, "events"))
		rc = server_events(cmd, &o);
	else
		rc = ctl_usage_error("remsimctl", "unknown command '%s'", cmd);
	if (rc == 0 && optind < argc && (!strcmp(cmd, "status") ||
					 !strcmp(cmd, "banks") ||
					 !strcmp(cmd, "clients") ||
					 !strcmp(cmd, "slotmaps") ||
					 !strcmp(cmd, "events")))
		rc = ctl_usage_error(cmd, "unexpected argument '%s'",
				     argv[optind]);
out:
	free(o.token);
	return rc;
}

/* token issue (without --key) | list | revoke, through the API. */
int cmd_token_api(int argc, char **argv)
{
	const char *verb = argv[1];
	char cmd[32], path[160] = "/api/v2/tokens", q[300] = "";
	struct api_opts o = { 0 };
	json_t *j = NULL, *body, *tk;
	size_t i;
	int rc;

	snprintf(cmd, sizeof(cmd), "token %s", verb);
	rc = api_parse(cmd, argc - 1, argv + 1, &o);
	if (rc)
		goto out;
	if (!strcmp(verb, "issue")) {
		char *end;
		long long id;

		if (!o.role || !o.id) {
			rc = ctl_usage_error(cmd, "--role and --id are needed "
					     "(or --key FILE to sign locally)");
			goto out;
		}
		id = strtoll(o.id, &end, 10);
		if (*end || id < 0) {
			rc = ctl_usage_error(cmd, "bad --id '%s'", o.id);
			goto out;
		}
		body = json_pack("{s:s,s:I,s:I}", "role", o.role, "subject",
				 (json_int_t)id, "ttl", (json_int_t)o.ttl);
		if (o.comment)
			json_object_set_new(body, "comment",
					    json_string(o.comment));
		rc = api_call(cmd, &o, "POST", path, body, &j);
		json_decref(body);
		if (!rc) {
			if (o.json)
				print_json(j);
			else
				puts(json_string_value(json_object_get(j,
								"token")));
		}
	} else if (!strcmp(verb, "list")) {
		struct table t = { .ncols = 6 };
		const char *head[] = { "TOKEN ID", "ROLE", "SUBJECT", "EXPIRES",
				       "REVOKED", "COMMENT" };

		snprintf(q, sizeof(q), "?limit=%ld", o.limit ? o.limit : 1000);
		strncat(path, q, sizeof(path) - strlen(path) - 1);
		rc = api_call(cmd, &o, "GET", path, NULL, &j);
		if (!rc && o.json)
			print_json(j);
		else if (!rc) {
			table_add(&t, head);
			json_array_foreach(json_object_get(j, "tokens"), i, tk) {
				char c0[40], c1[16], c2[24], c3[40], c4[8],
					c5[220];
				const char *row[6] = {
					jtext(json_object_get(tk, "token_id"),
					      c0, sizeof(c0)),
					jtext(json_object_get(tk, "role"), c1,
					      sizeof(c1)),
					jtext(json_object_get(tk, "subject"), c2,
					      sizeof(c2)),
					jtext(json_object_get(tk, "expires_at"),
					      c3, sizeof(c3)),
					jtext(json_object_get(tk, "revoked"), c4,
					      sizeof(c4)),
					jtext(json_object_get(tk, "comment"), c5,
					      sizeof(c5)),
				};

				table_add(&t, row);
			}
			table_print(&t);
		}
	} else {	/* revoke */
		if (argc - 1 - optind != 1) {
			rc = ctl_usage_error(cmd, "expected TOKEN_ID (32 hex "
					     "digits, see 'token list')");
			goto out;
		}
		snprintf(path, sizeof(path), "/api/v2/tokens/%.40s",
			 argv[1 + optind]);
		query_add(q, sizeof(q), "reason", o.reason);
		strncat(path, q, sizeof(path) - strlen(path) - 1);
		rc = api_call(cmd, &o, "DELETE", path, NULL, &j);
		if (!rc && !o.json)
			printf("revoked %s\n", argv[1 + optind]);
	}
	json_decref(j);
out:
	free(o.token);
	return rc;
}

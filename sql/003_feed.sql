-- 003_feed.sql: the admin feed's change stream (docs/feed.md). Statement-level triggers with
-- transition tables turn every INSERT, UPDATE and DELETE on banks, bank_slots, clients,
-- client_slots and slotmaps (and every INSERT into events) into a few NOTIFYs on the channel
-- remsim_feed, carrying the rows already rendered as the feed shows them. One path for
-- every writer: the server's write-back, the REST APIs and any SQL client. The control
-- plane's remsim_slotmaps notifications (001) are untouched.

-- The feed's timestamps: RFC 3339, UTC, microseconds, like the REST API.
CREATE FUNCTION remsim_feed_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- Numbers every payload: PostgreSQL folds identical payloads of one transaction into one,
-- which would lose the second "upsert" of upsert, delete, upsert of an unchanged row.
CREATE SEQUENCE remsim_feed_seq;

-- Sends rows (JSON objects of one table, one operation) as few notifications as fit under
-- PostgreSQL's 8000-byte payload limit:
--   {"n":7,"t":"bank_slots","op":"upsert","rows":[{...},{...}]}
-- A row too large for one payload goes by its key instead, for the server to read:
--   {"n":8,"t":"events","op":"fetch","keys":[{"event_id":4711}]}
CREATE FUNCTION remsim_feed_send(tbl text, op text, keys text[], rows jsonb[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	r jsonb;
	txt text;
	buf text := '';
	big text := '';
	room constant integer := 7900;	-- the limit is 8000, less the envelope
BEGIN
	FOREACH r IN ARRAY rows LOOP
		txt := r::text;
		IF octet_length(txt) > room - 100 THEN
			txt := (SELECT jsonb_object_agg(k, r -> k) FROM unnest(keys) k)::text;
			IF octet_length(big) + octet_length(txt) > room THEN
				PERFORM pg_notify('remsim_feed', format(
					'{"n":%s,"t":"%s","op":"fetch","keys":[%s]}',
					nextval('remsim_feed_seq'), tbl, big));
				big := '';
			END IF;
			big := big || CASE WHEN big = '' THEN '' ELSE ',' END || txt;
			CONTINUE;
		END IF;
		IF octet_length(buf) + octet_length(txt) > room THEN
			PERFORM pg_notify('remsim_feed', format(
				'{"n":%s,"t":"%s","op":"%s","rows":[%s]}',
				nextval('remsim_feed_seq'), tbl, op, buf));
			buf := '';
		END IF;
		buf := buf || CASE WHEN buf = '' THEN '' ELSE ',' END || txt;
	END LOOP;
	IF buf <> '' THEN
		PERFORM pg_notify('remsim_feed', format('{"n":%s,"t":"%s","op":"%s","rows":[%s]}',
			nextval('remsim_feed_seq'), tbl, op, buf));
	END IF;
	IF big <> '' THEN
		PERFORM pg_notify('remsim_feed', format('{"n":%s,"t":"%s","op":"fetch","keys":[%s]}',
			nextval('remsim_feed_seq'), tbl, big));
	END IF;
END;
$$;

-- How each table's rows look in the feed: the columns by name, timestamps as above, bytea as
-- lower-case hex, jsonb as is. (The server's snapshot uses the same functions.)
CREATE FUNCTION remsim_feed_bank(r banks) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT to_jsonb(r) || jsonb_build_object(
		'connected_at', remsim_feed_ts(r.connected_at),
		'last_seen', remsim_feed_ts(r.last_seen),
		'created_at', remsim_feed_ts(r.created_at),
		'updated_at', remsim_feed_ts(r.updated_at))
$$;

CREATE FUNCTION remsim_feed_bank_slot(r bank_slots) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT to_jsonb(r) || jsonb_build_object(
		'atr', encode(r.atr, 'hex'),
		'created_at', remsim_feed_ts(r.created_at),
		'updated_at', remsim_feed_ts(r.updated_at))
$$;

CREATE FUNCTION remsim_feed_client(r clients) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT to_jsonb(r) || jsonb_build_object(
		'created_at', remsim_feed_ts(r.created_at),
		'updated_at', remsim_feed_ts(r.updated_at))
$$;

CREATE FUNCTION remsim_feed_client_slot(r client_slots) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT to_jsonb(r) || jsonb_build_object(
		'connected_at', remsim_feed_ts(r.connected_at),
		'last_seen', remsim_feed_ts(r.last_seen),
		'created_at', remsim_feed_ts(r.created_at),
		'updated_at', remsim_feed_ts(r.updated_at))
$$;

CREATE FUNCTION remsim_feed_slotmap(r slotmaps) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT to_jsonb(r) || jsonb_build_object(
		'created_at', remsim_feed_ts(r.created_at),
		'updated_at', remsim_feed_ts(r.updated_at))
$$;

-- Shaped like an element of GET /api/v2/events.
CREATE FUNCTION remsim_feed_event(r events) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT to_jsonb(r) || jsonb_build_object('at', remsim_feed_ts(r.at))
$$;

-- One trigger function per table: INSERT and UPDATE send the new rows as upserts; DELETE,
-- and an UPDATE that changed a row's key, send the old keys as deletes (before the upserts).
CREATE FUNCTION remsim_feed_banks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	k constant text[] := '{bank_id}';
BEGIN
	IF TG_OP = 'UPDATE' THEN
		PERFORM remsim_feed_send('banks', 'delete', k, ARRAY(
			SELECT jsonb_build_object('bank_id', o.bank_id) FROM old_rows o
			WHERE NOT EXISTS (SELECT FROM new_rows n WHERE n.bank_id = o.bank_id)));
	END IF;
	IF TG_OP = 'DELETE' THEN
		PERFORM remsim_feed_send('banks', 'delete', k, ARRAY(
			SELECT jsonb_build_object('bank_id', o.bank_id) FROM old_rows o));
	ELSE
		PERFORM remsim_feed_send('banks', 'upsert', k, ARRAY(
			SELECT remsim_feed_bank(n::banks) FROM new_rows n));
	END IF;
	RETURN NULL;
END;
$$;

CREATE FUNCTION remsim_feed_bank_slots() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	k constant text[] := '{bank_id,slot_nr}';
BEGIN
	IF TG_OP = 'UPDATE' THEN
		PERFORM remsim_feed_send('bank_slots', 'delete', k, ARRAY(
			SELECT jsonb_build_object('bank_id', o.bank_id, 'slot_nr', o.slot_nr)
			FROM old_rows o WHERE NOT EXISTS (SELECT FROM new_rows n
				WHERE n.bank_id = o.bank_id AND n.slot_nr = o.slot_nr)));
	END IF;
	IF TG_OP = 'DELETE' THEN
		PERFORM remsim_feed_send('bank_slots', 'delete', k, ARRAY(
			SELECT jsonb_build_object('bank_id', o.bank_id, 'slot_nr', o.slot_nr)
			FROM old_rows o));
	ELSE
		PERFORM remsim_feed_send('bank_slots', 'upsert', k, ARRAY(
			SELECT remsim_feed_bank_slot(n::bank_slots) FROM new_rows n));
	END IF;
	RETURN NULL;
END;
$$;

CREATE FUNCTION remsim_feed_clients() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	k constant text[] := '{client_id}';
BEGIN
	IF TG_OP = 'UPDATE' THEN
		PERFORM remsim_feed_send('clients', 'delete', k, ARRAY(
			SELECT jsonb_build_object('client_id', o.client_id) FROM old_rows o
			WHERE NOT EXISTS (SELECT FROM new_rows n WHERE n.client_id = o.client_id)));
	END IF;
	IF TG_OP = 'DELETE' THEN
		PERFORM remsim_feed_send('clients', 'delete', k, ARRAY(
			SELECT jsonb_build_object('client_id', o.client_id) FROM old_rows o));
	ELSE
		PERFORM remsim_feed_send('clients', 'upsert', k, ARRAY(
			SELECT remsim_feed_client(n::clients) FROM new_rows n));
	END IF;
	RETURN NULL;
END;
$$;

CREATE FUNCTION remsim_feed_client_slots() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	k constant text[] := '{client_id,slot_nr}';
BEGIN
	IF TG_OP = 'UPDATE' THEN
		PERFORM remsim_feed_send('client_slots', 'delete', k, ARRAY(
			SELECT jsonb_build_object('client_id', o.client_id, 'slot_nr', o.slot_nr)
			FROM old_rows o WHERE NOT EXISTS (SELECT FROM new_rows n
				WHERE n.client_id = o.client_id AND n.slot_nr = o.slot_nr)));
	END IF;
	IF TG_OP = 'DELETE' THEN
		PERFORM remsim_feed_send('client_slots', 'delete', k, ARRAY(
			SELECT jsonb_build_object('client_id', o.client_id, 'slot_nr', o.slot_nr)
			FROM old_rows o));
	ELSE
		PERFORM remsim_feed_send('client_slots', 'upsert', k, ARRAY(
			SELECT remsim_feed_client_slot(n::client_slots) FROM new_rows n));
	END IF;
	RETURN NULL;
END;
$$;

CREATE FUNCTION remsim_feed_slotmaps() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	k constant text[] := '{bank_id,bank_slot}';
BEGIN
	IF TG_OP = 'UPDATE' THEN
		PERFORM remsim_feed_send('slotmaps', 'delete', k, ARRAY(
			SELECT jsonb_build_object('bank_id', o.bank_id, 'bank_slot', o.bank_slot,
						  'slotmap_id', o.slotmap_id)
			FROM old_rows o WHERE NOT EXISTS (SELECT FROM new_rows n
				WHERE n.bank_id = o.bank_id AND n.bank_slot = o.bank_slot)));
	END IF;
	IF TG_OP = 'DELETE' THEN
		PERFORM remsim_feed_send('slotmaps', 'delete', k, ARRAY(
			SELECT jsonb_build_object('bank_id', o.bank_id, 'bank_slot', o.bank_slot,
						  'slotmap_id', o.slotmap_id)
			FROM old_rows o));
	ELSE
		PERFORM remsim_feed_send('slotmaps', 'upsert', k, ARRAY(
			SELECT remsim_feed_slotmap(n::slotmaps) FROM new_rows n));
	END IF;
	RETURN NULL;
END;
$$;

CREATE FUNCTION remsim_feed_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM remsim_feed_send('events', 'insert', '{event_id}', ARRAY(
		SELECT remsim_feed_event(n::events) FROM new_rows n));
	RETURN NULL;
END;
$$;

-- TRUNCATE has no transition table: the server sends every subscriber a new snapshot.
CREATE FUNCTION remsim_feed_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('remsim_feed', format('{"n":%s,"t":"%s","op":"truncate"}',
		nextval('remsim_feed_seq'), TG_TABLE_NAME));
	RETURN NULL;
END;
$$;

-- Four triggers per table (a trigger with transition tables fires on one event only), named
-- <table>_feed_insert, _update, _delete and _truncate, calling remsim_feed_<table>().
DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['banks', 'bank_slots', 'clients', 'client_slots', 'slotmaps']
	LOOP
		EXECUTE format('CREATE TRIGGER %1$I AFTER INSERT ON %2$I '
			'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT '
			'EXECUTE FUNCTION %3$I()', t || '_feed_insert', t, 'remsim_feed_' || t);
		EXECUTE format('CREATE TRIGGER %1$I AFTER UPDATE ON %2$I '
			'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
			'FOR EACH STATEMENT EXECUTE FUNCTION %3$I()', t || '_feed_update', t,
			'remsim_feed_' || t);
		EXECUTE format('CREATE TRIGGER %1$I AFTER DELETE ON %2$I '
			'REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT '
			'EXECUTE FUNCTION %3$I()', t || '_feed_delete', t, 'remsim_feed_' || t);
		EXECUTE format('CREATE TRIGGER %1$I AFTER TRUNCATE ON %2$I FOR EACH STATEMENT '
			'EXECUTE FUNCTION remsim_feed_truncate()', t || '_feed_truncate', t);
	END LOOP;
END;
$$;

CREATE TRIGGER events_feed_insert AFTER INSERT ON events
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION remsim_feed_events();
CREATE TRIGGER events_feed_truncate AFTER TRUNCATE ON events
	FOR EACH STATEMENT EXECUTE FUNCTION remsim_feed_truncate();

-- The server's snapshot: every table at one instant (one statement, one MVCC snapshot),
-- each as a JSON array of rows in key order; events: the latest nevents, oldest first.
CREATE FUNCTION remsim_feed_snapshot(nevents integer,
	OUT at text, OUT banks text, OUT bank_slots text, OUT clients text,
	OUT client_slots text, OUT slotmaps text, OUT events text)
LANGUAGE sql STABLE AS $$
	SELECT remsim_feed_ts(now()),
		(SELECT coalesce(json_agg(remsim_feed_bank(b) ORDER BY b.bank_id), '[]')
		 FROM banks b)::text,
		(SELECT coalesce(json_agg(remsim_feed_bank_slot(s) ORDER BY s.bank_id,
			s.slot_nr), '[]') FROM bank_slots s)::text,
		(SELECT coalesce(json_agg(remsim_feed_client(c) ORDER BY c.client_id), '[]')
		 FROM clients c)::text,
		(SELECT coalesce(json_agg(remsim_feed_client_slot(s) ORDER BY s.client_id,
			s.slot_nr), '[]') FROM client_slots s)::text,
		(SELECT coalesce(json_agg(remsim_feed_slotmap(m) ORDER BY m.bank_id,
			m.bank_slot), '[]') FROM slotmaps m)::text,
		(SELECT coalesce(json_agg(remsim_feed_event(e) ORDER BY e.event_id), '[]')
		 FROM (SELECT * FROM events ORDER BY event_id DESC LIMIT nevents) e)::text
$$;

-- One row by key (a "fetch" notification), as the feed shows it; NULL if it is gone.
CREATE FUNCTION remsim_feed_fetch(tbl text, k jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT CASE tbl
	WHEN 'banks' THEN (SELECT remsim_feed_bank(r)::text FROM banks r
		WHERE r.bank_id = (k ->> 'bank_id')::integer)
	WHEN 'bank_slots' THEN (SELECT remsim_feed_bank_slot(r)::text FROM bank_slots r
		WHERE r.bank_id = (k ->> 'bank_id')::integer
		AND r.slot_nr = (k ->> 'slot_nr')::integer)
	WHEN 'clients' THEN (SELECT remsim_feed_client(r)::text FROM clients r
		WHERE r.client_id = (k ->> 'client_id')::integer)
	WHEN 'client_slots' THEN (SELECT remsim_feed_client_slot(r)::text FROM client_slots r
		WHERE r.client_id = (k ->> 'client_id')::integer
		AND r.slot_nr = (k ->> 'slot_nr')::integer)
	WHEN 'slotmaps' THEN (SELECT remsim_feed_slotmap(r)::text FROM slotmaps r
		WHERE r.bank_id = (k ->> 'bank_id')::integer
		AND r.bank_slot = (k ->> 'bank_slot')::integer)
	WHEN 'events' THEN (SELECT remsim_feed_event(r)::text FROM events r
		WHERE r.event_id = (k ->> 'event_id')::bigint)
	END
$$;

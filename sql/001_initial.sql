-- 001_initial.sql: remsim's first schema. Configuration (banks, clients, slot mappings,
-- tokens) and the runtime state the server writes back, guarded by named constraints that
-- the server turns into API errors. Applied by remsim-server in one transaction under its
-- migration advisory lock: no BEGIN/COMMIT here. Described in docs/sql.md.

-- Keeps updated_at truthful whoever writes the row: the server, the REST API or psql.
CREATE FUNCTION remsim_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	NEW.updated_at := now();
	RETURN NEW;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Banks and their slots. A row appears when an operator names a bank or when a bankd
-- connects; the runtime columns are the server's.

CREATE TABLE banks (
	bank_id		integer NOT NULL,
	name		text,
	online		boolean NOT NULL DEFAULT false,
	peer_addr	text,
	component	jsonb,
	num_slots	integer,
	authenticated	boolean,
	connected_at	timestamptz,
	last_seen	timestamptz,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT banks_pkey PRIMARY KEY (bank_id),
	CONSTRAINT banks_bank_id_range CHECK (bank_id BETWEEN 0 AND 1023),
	-- RSPRO sends numberOfSlots as a SlotNumber, INTEGER (0..1023).
	CONSTRAINT banks_num_slots_range CHECK (num_slots BETWEEN 0 AND 1023),
	CONSTRAINT banks_component_object CHECK (jsonb_typeof(component) = 'object')
);

CREATE TABLE bank_slots (
	bank_id		integer NOT NULL,
	slot_nr		integer NOT NULL,
	name		text,
	card_present	boolean,
	atr		bytea,
	worker_state	text,
	reset_active	boolean,
	vcc_present	boolean,
	clk_active	boolean,
	apdu_count	bigint NOT NULL DEFAULT 0,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT bank_slots_pkey PRIMARY KEY (bank_id, slot_nr),
	CONSTRAINT bank_slots_bank_fkey FOREIGN KEY (bank_id)
		REFERENCES banks (bank_id) ON DELETE CASCADE,
	CONSTRAINT bank_slots_bank_id_range CHECK (bank_id BETWEEN 0 AND 1023),
	CONSTRAINT bank_slots_slot_nr_range CHECK (slot_nr BETWEEN 0 AND 1023),
	CONSTRAINT bank_slots_atr_length CHECK (octet_length(atr) BETWEEN 1 AND 55),
	-- remsim-bankd's worker states (docs/design.md); NULL: not reported.
	CONSTRAINT bank_slots_worker_state_valid CHECK (worker_state IN ('INIT', 'ACCEPTING',
		'CONNECTED_WAIT_ID', 'CONNECTED_CLIENT', 'CONNECTED_CLIENT_MAPPED',
		'CONNECTED_CLIENT_MAPPED_CARD', 'CONNECTED_SERVER')),
	CONSTRAINT bank_slots_apdu_count_range CHECK (apdu_count >= 0)
);

-- ---------------------------------------------------------------------------------------
-- Clients (modem hosts) and their slots. A client brings its own id and slot number.

CREATE TABLE clients (
	client_id	integer NOT NULL,
	name		text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT clients_pkey PRIMARY KEY (client_id),
	CONSTRAINT clients_client_id_range CHECK (client_id BETWEEN 0 AND 1023)
);

CREATE TABLE client_slots (
	client_id	integer NOT NULL,
	slot_nr		integer NOT NULL,
	name		text,
	online		boolean NOT NULL DEFAULT false,
	peer_addr	text,
	component	jsonb,
	authenticated	boolean,
	connected_at	timestamptz,
	last_seen	timestamptz,
	bankd_addr	text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT client_slots_pkey PRIMARY KEY (client_id, slot_nr),
	CONSTRAINT client_slots_client_fkey FOREIGN KEY (client_id)
		REFERENCES clients (client_id) ON DELETE CASCADE,
	CONSTRAINT client_slots_client_id_range CHECK (client_id BETWEEN 0 AND 1023),
	CONSTRAINT client_slots_slot_nr_range CHECK (slot_nr BETWEEN 0 AND 1023),
	CONSTRAINT client_slots_component_object CHECK (jsonb_typeof(component) = 'object')
);

-- ---------------------------------------------------------------------------------------
-- Slot mappings: which bank slot feeds which client slot. No foreign keys to the bank and
-- client tables on purpose: like osmo-remsim, a mapping may name a bank or client that has
-- never connected yet.

CREATE TABLE slotmaps (
	-- osmo-remsim's REST id (DELETE /slotmaps/:id). It is a function of the bank slot,
	-- so the bank slot's uniqueness makes it unique too.
	slotmap_id	bigint NOT NULL
			GENERATED ALWAYS AS (bank_id::bigint * 65536 + bank_slot) STORED,
	bank_id		integer NOT NULL,
	bank_slot	integer NOT NULL,
	client_id	integer NOT NULL,
	client_slot	integer NOT NULL,
	state		text NOT NULL DEFAULT 'NEW',
	created_by	text NOT NULL DEFAULT 'sql',
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	-- The bank slot is the natural key. Named like the client-side one, so that both
	-- refusals read alike: 'violates unique constraint "slotmaps_bank_slot_unique"'.
	CONSTRAINT slotmaps_bank_slot_unique PRIMARY KEY (bank_id, bank_slot),
	CONSTRAINT slotmaps_client_slot_unique UNIQUE (client_id, client_slot),
	CONSTRAINT slotmaps_bank_id_range CHECK (bank_id BETWEEN 0 AND 1023),
	CONSTRAINT slotmaps_bank_slot_range CHECK (bank_slot BETWEEN 0 AND 1023),
	CONSTRAINT slotmaps_client_id_range CHECK (client_id BETWEEN 0 AND 1023),
	CONSTRAINT slotmaps_client_slot_range CHECK (client_slot BETWEEN 0 AND 1023),
	CONSTRAINT slotmaps_state_valid CHECK (state IN ('NEW', 'UNACKNOWLEDGED', 'ACTIVE',
		'DELETE_REQ', 'DELETING'))
);

-- Not UNIQUE: a second unique index would race the primary key to report a duplicate bank
-- slot, and the refusal must always name slotmaps_bank_slot_unique.
CREATE INDEX slotmaps_slotmap_id_idx ON slotmaps (slotmap_id);

-- Numbers every slotmap notification, so that PostgreSQL never folds two identical
-- payloads of one transaction into one (INSERT, DELETE, INSERT of the same mapping).
CREATE SEQUENCE slotmaps_notify_seq;

-- A mapping whose bank or client side changed is a new mapping no bankd has acknowledged:
-- it starts again as NEW, whatever state the old one had reached.
CREATE FUNCTION remsim_slotmaps_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF (NEW.bank_id, NEW.bank_slot, NEW.client_id, NEW.client_slot)
	   IS DISTINCT FROM (OLD.bank_id, OLD.bank_slot, OLD.client_id, OLD.client_slot) THEN
		NEW.state := 'NEW';
	END IF;
	NEW.updated_at := now();
	RETURN NEW;
END;
$$;

CREATE TRIGGER slotmaps_before_update
	BEFORE UPDATE ON slotmaps
	FOR EACH ROW EXECUTE FUNCTION remsim_slotmaps_before_update();

-- Payload, compact and in this key order (docs/sql.md):
--   {"op":"INSERT","id":65536,"bank":[1,0],"client":[23,0],"seq":7}
--   UPDATE adds "old_bank":[b,s],"old_client":[c,s] before "seq"; DELETE shows the old row.
-- Built with format() because json_build_object() pads with spaces and jsonb reorders keys.
CREATE FUNCTION remsim_slotmaps_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	r slotmaps;
	payload text;
BEGIN
	IF TG_OP = 'DELETE' THEN
		r := OLD;
	ELSE
		r := NEW;
	END IF;
	payload := format('{"op":"%s","id":%s,"bank":[%s,%s],"client":[%s,%s]',
			  TG_OP, r.slotmap_id, r.bank_id, r.bank_slot,
			  r.client_id, r.client_slot);
	IF TG_OP = 'UPDATE' THEN
		payload := payload || format(',"old_bank":[%s,%s],"old_client":[%s,%s]',
					     OLD.bank_id, OLD.bank_slot,
					     OLD.client_id, OLD.client_slot);
	END IF;
	payload := payload || format(',"seq":%s}', nextval('slotmaps_notify_seq'));
	PERFORM pg_notify('remsim_slotmaps', payload);
	RETURN NULL;
END;
$$;

CREATE TRIGGER slotmaps_notify_insert_delete
	AFTER INSERT OR DELETE ON slotmaps
	FOR EACH ROW EXECUTE FUNCTION remsim_slotmaps_notify();

-- The server writes state and updated_at all the time; only a change of the mapping
-- itself concerns it. (UPDATE OF alone also fires when a column is set to its old value.)
CREATE TRIGGER slotmaps_notify_update
	AFTER UPDATE OF bank_id, bank_slot, client_id, client_slot ON slotmaps
	FOR EACH ROW
	WHEN ((NEW.bank_id, NEW.bank_slot, NEW.client_id, NEW.client_slot)
	      IS DISTINCT FROM (OLD.bank_id, OLD.bank_slot, OLD.client_id, OLD.client_slot))
	EXECUTE FUNCTION remsim_slotmaps_notify();

-- TRUNCATE fires no row triggers: tell the server to reload every mapping.
CREATE FUNCTION remsim_slotmaps_notify_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('remsim_slotmaps',
			  format('{"op":"TRUNCATE","seq":%s}', nextval('slotmaps_notify_seq')));
	RETURN NULL;
END;
$$;

CREATE TRIGGER slotmaps_notify_truncate
	AFTER TRUNCATE ON slotmaps
	FOR EACH STATEMENT EXECUTE FUNCTION remsim_slotmaps_notify_truncate();

-- ---------------------------------------------------------------------------------------
-- Tokens (docs/tokens.md). tokens records what the server issued; revoked_tokens is the
-- revocation list the server checks at every connect. Kept apart so that any token id can
-- be revoked, registered or not, with one plain INSERT.

CREATE TABLE tokens (
	token_id	text NOT NULL,
	role		text NOT NULL,
	subject		bigint NOT NULL,
	key_id		text NOT NULL,
	issued_at	timestamptz NOT NULL,
	expires_at	timestamptz NOT NULL,
	comment		text,
	CONSTRAINT tokens_pkey PRIMARY KEY (token_id),
	CONSTRAINT tokens_token_id_format CHECK (token_id ~ '^[0-9a-f]{32}$'),
	CONSTRAINT tokens_role_valid CHECK (role IN ('bankd', 'client', 'admin')),
	CONSTRAINT tokens_subject_range CHECK (subject BETWEEN 0 AND 4294967295),
	CONSTRAINT tokens_key_id_format CHECK (key_id ~ '^[0-9a-f]{16}$'),
	CONSTRAINT tokens_expiry_order CHECK (expires_at > issued_at)
);

CREATE TABLE revoked_tokens (
	token_id	text NOT NULL,
	revoked_at	timestamptz NOT NULL DEFAULT now(),
	reason		text,
	revoked_by	text NOT NULL DEFAULT 'sql',
	CONSTRAINT revoked_tokens_pkey PRIMARY KEY (token_id),
	CONSTRAINT revoked_tokens_token_id_format CHECK (token_id ~ '^[0-9a-f]{32}$')
);

-- The server drops a live connection that authenticated with a token revoked now.
CREATE FUNCTION remsim_revoked_tokens_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('remsim_tokens', NEW.token_id);
	RETURN NULL;
END;
$$;

CREATE TRIGGER revoked_tokens_notify
	AFTER INSERT OR UPDATE OF token_id ON revoked_tokens
	FOR EACH ROW EXECUTE FUNCTION remsim_revoked_tokens_notify();

-- ---------------------------------------------------------------------------------------
-- Audit and event log, streamed by the admin feed.

CREATE TABLE events (
	event_id	bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
	at		timestamptz NOT NULL DEFAULT now(),
	severity	text NOT NULL DEFAULT 'info',
	kind		text NOT NULL,
	bank_id		integer,
	bank_slot	integer,
	client_id	integer,
	client_slot	integer,
	actor		text,
	message		text NOT NULL,
	details		jsonb,
	CONSTRAINT events_pkey PRIMARY KEY (event_id),
	CONSTRAINT events_severity_valid CHECK (severity IN ('debug', 'info', 'notice',
		'warning', 'error')),
	-- Dotted lower-case words, e.g. bankd.connect, slotmap.create, rspro.error_ind.
	CONSTRAINT events_kind_format CHECK (kind ~ '^[a-z0-9_]+(\.[a-z0-9_]+)*$'),
	CONSTRAINT events_bank_id_range CHECK (bank_id BETWEEN 0 AND 1023),
	CONSTRAINT events_bank_slot_range CHECK (bank_slot BETWEEN 0 AND 1023),
	CONSTRAINT events_client_id_range CHECK (client_id BETWEEN 0 AND 1023),
	CONSTRAINT events_client_slot_range CHECK (client_slot BETWEEN 0 AND 1023),
	CONSTRAINT events_details_object CHECK (jsonb_typeof(details) = 'object')
);

CREATE INDEX events_at_idx ON events (at);
CREATE INDEX events_kind_idx ON events (kind, at);

CREATE FUNCTION remsim_events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('remsim_events', NEW.event_id::text);
	RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify
	AFTER INSERT ON events
	FOR EACH ROW EXECUTE FUNCTION remsim_events_notify();

-- ---------------------------------------------------------------------------------------
-- updated_at on every table that has one (slotmaps: in its own BEFORE UPDATE trigger).

CREATE TRIGGER banks_touch_updated_at
	BEFORE UPDATE ON banks
	FOR EACH ROW EXECUTE FUNCTION remsim_touch_updated_at();

CREATE TRIGGER bank_slots_touch_updated_at
	BEFORE UPDATE ON bank_slots
	FOR EACH ROW EXECUTE FUNCTION remsim_touch_updated_at();

CREATE TRIGGER clients_touch_updated_at
	BEFORE UPDATE ON clients
	FOR EACH ROW EXECUTE FUNCTION remsim_touch_updated_at();

CREATE TRIGGER client_slots_touch_updated_at
	BEFORE UPDATE ON client_slots
	FOR EACH ROW EXECUTE FUNCTION remsim_touch_updated_at();

-- ---------------------------------------------------------------------------------------
-- Views for SQL automation.

-- Bank slots in the inventory (reported by their bankd or added by hand) that no mapping
-- uses. Add "WHERE bank_online AND card_present" for slots that can serve a client now.
CREATE VIEW free_bank_slots AS
SELECT bs.bank_id, bs.slot_nr, bs.name, b.online AS bank_online, bs.card_present
FROM bank_slots bs
JOIN banks b ON b.bank_id = bs.bank_id
WHERE NOT EXISTS (SELECT FROM slotmaps m
		  WHERE m.bank_id = bs.bank_id AND m.bank_slot = bs.slot_nr)
ORDER BY bs.bank_id, bs.slot_nr;

-- Client slots that have been seen and have no mapping.
CREATE VIEW free_client_slots AS
SELECT cs.client_id, cs.slot_nr, cs.name, cs.online
FROM client_slots cs
WHERE NOT EXISTS (SELECT FROM slotmaps m
		  WHERE m.client_id = cs.client_id AND m.client_slot = cs.slot_nr)
ORDER BY cs.client_id, cs.slot_nr;

-- Every mapping with what the server knows about its two ends. A bank or client that has
-- never connected shows as offline.
CREATE VIEW slotmap_view AS
SELECT m.slotmap_id, m.bank_id, m.bank_slot, m.client_id, m.client_slot, m.state,
       coalesce(b.online, false) AS bank_online,
       bs.card_present,
       coalesce(cs.online, false) AS client_online,
       m.created_by, m.created_at, m.updated_at
FROM slotmaps m
LEFT JOIN banks b ON b.bank_id = m.bank_id
LEFT JOIN bank_slots bs ON bs.bank_id = m.bank_id AND bs.slot_nr = m.bank_slot
LEFT JOIN client_slots cs ON cs.client_id = m.client_id AND cs.slot_nr = m.client_slot
ORDER BY m.bank_id, m.bank_slot;

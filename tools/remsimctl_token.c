/*
 * remsimctl keygen / token issue / token verify: the command line face of
 * common/token.c. Results go to stdout (one token per line for issue, so
 * that $(...) works), every refusal to stderr with its reason.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "remsimctl.h"
#include "token.h"

#define CTL_PATH_MAX 4096
#define RSPRO_ID_MAX 1023	/* bank and client ids are INTEGER (0..1023) */

static const char keygen_usage[] =
	"usage: remsimctl keygen [--dir DIR | --secret FILE --public FILE] "
	"[--force]\n"
	"\n"
	"Creates the server's Ed25519 key pair: a secret key file (mode 0600)\n"
	"that signs tokens, and a public key file that verifies them.\n"
	"Prints the key id and the file names.\n"
	"\n"
	"  -d, --dir DIR        write DIR/server.key and DIR/server.pub "
	"(default: .)\n"
	"  -s, --secret FILE    secret key file (needs --public)\n"
	"  -p, --public FILE    public key file (needs --secret)\n"
	"  -f, --force          replace existing files; tokens signed with "
	"the\n"
	"                       old key then no longer verify\n"
	"  -h, --help           show this help\n"
	"\n"
	"Exit status: 0 created, 1 failed (e.g. files exist), 2 usage error.\n"
	"\n"
	"Example:\n"
	"  remsimctl keygen --dir /etc/remsim\n";

static const char token_usage[] =
	"usage: remsimctl token issue --key SECRET --role ROLE --id N "
	"[--ttl 30d]\n"
	"                             [--now UNIXTIME] [--json]\n"
	"       remsimctl token verify --key KEYFILE [--role ROLE] [--id N]\n"
	"                              [--skew 60s] [--now UNIXTIME] [--json] "
	"TOKEN|-\n"
	"       remsimctl token issue --role ROLE --id N [--ttl 30d] "
	"[--comment TEXT]\n"
	"       remsimctl token list | revoke TOKEN_ID [--reason TEXT]\n"
	"                             (these three over the server's API: see\n"
	"                              'remsimctl status --help' for --server,"
	" --token)\n"
	"\n"
	"issue   signs a token with the secret key file and prints it on one "
	"line.\n"
	"verify  checks a token (argument, or '-' for stdin) against a public "
	"or\n"
	"        secret key file and prints its claims and \"valid\".\n"
	"\n"
	"  -k, --key FILE       key file (issue: secret key; verify: either)\n"
	"  -r, --role ROLE      bankd, client or admin (verify: expect it)\n"
	"  -i, --id N           subject: bank id or client id (0..1023), "
	"admin id\n"
	"                       (verify: expect it)\n"
	"  -t, --ttl DURATION   issue: validity, N[s|m|h|d] (default 30d)\n"
	"  -s, --skew DURATION  verify: clock skew tolerated (default 60s)\n"
	"  -n, --now UNIXTIME   issue: sign as if it were this time;\n"
	"                       verify: check as if it were this time\n"
	"  -j, --json           print a JSON object instead of text\n"
	"  -h, --help           show this help\n"
	"\n"
	"Exit status: 0 issued / valid, 1 failed / invalid token, 2 usage "
	"error.\n"
	"\n"
	"Examples:\n"
	"  remsimctl token issue --key server.key --role client --id 23 "
	"--ttl 90d\n"
	"  remsimctl token verify --key server.pub --role client --id 23 "
	"\"$TOKEN\"\n";

static void ctl_verror(const char *cmd, const char *fmt, va_list ap)
{
	fprintf(stderr, "remsimctl %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void ctl_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_verror(cmd, fmt, ap);
	va_end(ap);
}

int ctl_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_verror(cmd, fmt, ap);
	va_end(ap);
	fprintf(stderr, "(see 'remsimctl %s --help')\n", cmd);
	return CTL_EXIT_USAGE;
}

/*
 * getopt's '?' and ':' answers (optstring starts with ':'). getopt has
 * moved past a long option, so argv names it as typed; a short one may sit
 * inside a cluster ("-jx"), so optopt names it.
 */
static int ctl_bad_option(const char *cmd, int opt, char **argv)
{
	char name[3] = { '-', (char)optopt, '\0' };
	const char *prev = optind > 1 ? argv[optind - 1] : "";
	const char *what = !strncmp(prev, "--", 2) || !optopt ? prev : name;

	if (opt == ':')
		return ctl_usage_error(cmd, "option %s needs a value", what);
	return ctl_usage_error(cmd, "unknown option %s", what);
}

/* Leading decimal digits (no sign, no blanks); end points past them. */
static int parse_digits(const char *s, unsigned long long *v, char **end)
{
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, end, 10);
	return errno ? -1 : 0;
}

/* "90", "90s", "15m", "12h", "30d": a number of seconds. */
int ctl_parse_duration(const char *s, int64_t *out)
{
	static const struct {
		char suffix;
		int64_t seconds;
	} units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 } };
	int64_t mult = 1;
	unsigned long long v;
	char *end;

	if (parse_digits(s, &v, &end) < 0)
		return -1;
	if (*end) {
		size_t i;

		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (*end == units[i].suffix)
				break;
		if (i == sizeof(units) / sizeof(units[0]) || end[1])
			return -1;
		mult = units[i].seconds;
	}
	if (v > (unsigned long long)(INT64_MAX / mult))
		return -1;
	*out = (int64_t)v * mult;
	return 0;
}

static int parse_uint(const char *s, unsigned long long max,
		      unsigned long long *out)
{
	char *end;

	if (parse_digits(s, out, &end) < 0)
		return -1;
	return *end || *out > max ? -1 : 0;
}

static int parse_time(const char *s, int64_t *out)
{
	long long v;
	char *end;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

/* ISO 8601 UTC, or "@SECONDS" for times gmtime cannot show. */
static const char *format_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if ((int64_t)tt != t || !gmtime_r(&tt, &tm) ||
	    !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "@%lld", (long long)t);
	return buf;
}

static int cmd_keygen_paths(const char *dir, char *secret, char *pub)
{
	if ((size_t)snprintf(secret, CTL_PATH_MAX, "%s/server.key", dir) >=
		    CTL_PATH_MAX ||
	    (size_t)snprintf(pub, CTL_PATH_MAX, "%s/server.pub", dir) >=
		    CTL_PATH_MAX)
		return -1;
	return 0;
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option options[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "secret", required_argument, NULL, 's' },
		{ "public", required_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *secret = NULL, *pub = NULL;
	char secret_buf[CTL_PATH_MAX], public_buf[CTL_PATH_MAX], err[512];
	char key_id[17];
	struct token_keypair kp;
	int force = 0, opt, rc;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":d:s:p:fh", options, NULL)) !=
	       -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 's':
			secret = optarg;
			break;
		case 'p':
			pub = optarg;
			break;
		case 'f':
			force = 1;
			break;
		case 'h':
			fputs(keygen_usage, stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option("keygen", opt, argv);
		}
	}
	if (optind < argc)
		return ctl_usage_error("keygen", "unexpected argument '%s'",
				       argv[optind]);
	if (dir && (secret || pub))
		return ctl_usage_error("keygen", "--dir and --secret/--public "
				       "exclude each other");
	if (!secret != !pub)
		return ctl_usage_error("keygen", "--secret and --public go "
				       "together");
	if (!secret) {
		if (cmd_keygen_paths(dir ? dir : ".", secret_buf,
				     public_buf) < 0)
			return ctl_usage_error("keygen", "directory name too "
					       "long");
		secret = secret_buf;
		pub = public_buf;
	}

	rc = token_keypair_generate(&kp);
	if (rc < 0) {
		ctl_error("keygen", "%s", token_strerror(rc));
		return CTL_EXIT_FAIL;
	}
	rc = token_keypair_save(&kp, secret, pub, force, err, sizeof(err));
	token_key_id_hex(kp.key_id, key_id);
	token_keypair_wipe(&kp);
	if (rc == TOKEN_ERR_EXISTS) {
		ctl_error("keygen", "%s; use --force to replace the key pair "
			  "(tokens signed with the old key then stop "
			  "verifying)", err);
		return CTL_EXIT_FAIL;
	}
	if (rc < 0) {
		ctl_error("keygen", "%s", err);
		return CTL_EXIT_FAIL;
	}
	printf("key id:     %s\n"
	       "secret key: %s (mode 0600: keep it on the server only)\n"
	       "public key: %s\n",
	       key_id, secret, pub);
	return CTL_EXIT_OK;
}

/* Options shared by issue and verify; unset values stay as initialised. */
struct token_opts {
	const char *key;
	int role;		/* TOKEN_ROLE_ANY if not given */
	long subject;		/* TOKEN_SUBJECT_ANY if not given */
	int64_t ttl;
	int64_t skew;
	int64_t now;
	int json;
	const char *token;	/* verify's argument */
};

static int token_parse_opts(const char *cmd, int argc, char **argv,
			    struct token_opts *o, int *done)
{
	static const struct option options[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "role", required_argument, NULL, 'r' },
		{ "id", required_argument, NULL, 'i' },
		{ "ttl", required_argument, NULL, 't' },
		{ "skew", required_argument, NULL, 's' },
		{ "now", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int issue = !strcmp(cmd, "token issue");
	unsigned long long id;
	enum token_role role;
	int opt;

	*done = 0;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":k:r:i:t:s:n:jh", options,
				  NULL)) != -1) {
		switch (opt) {
		case 'k':
			o->key = optarg;
			break;
		case 'r':
			if (token_role_parse(optarg, &role) < 0)
				return ctl_usage_error(cmd, "unknown role '%s' "
						       "(bankd, client or "
						       "admin)", optarg);
			o->role = role;
			break;
		case 'i':
			if (parse_uint(optarg, UINT32_MAX, &id) < 0)
				return ctl_usage_error(cmd, "bad id '%s' (a "
						       "number 0..4294967295)",
						       optarg);
			o->subject = (long)id;
			break;
		case 't':
			if (!issue)
				return ctl_usage_error(cmd, "--ttl is for "
						       "'token issue'");
			if (ctl_parse_duration(optarg, &o->ttl) < 0 || !o->ttl)
				return ctl_usage_error(cmd, "bad --ttl '%s' "
						       "(N[s|m|h|d], more "
						       "than 0)", optarg);
			break;
		case 's':
			if (issue)
				return ctl_usage_error(cmd, "--skew is for "
						       "'token verify'");
			if (ctl_parse_duration(optarg, &o->skew) < 0)
				return ctl_usage_error(cmd, "bad --skew '%s' "
						       "(N[s|m|h|d])", optarg);
			break;
		case 'n':
			/* issue: as if issued then (tests, pre-dated tokens) */
			if (parse_time(optarg, &o->now) < 0)
				return ctl_usage_error(cmd, "bad --now '%s' "
						       "(Unix seconds)",
						       optarg);
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			fputs(token_usage, stdout);
			*done = 1;
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option(cmd, opt, argv);
		}
	}
	if (!o->key)
		return ctl_usage_error(cmd, "--key is required");
	if (issue) {
		if (optind < argc)
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       argv[optind]);
		if (o->role == TOKEN_ROLE_ANY ||
		    o->subject == TOKEN_SUBJECT_ANY)
			return ctl_usage_error(cmd, "--role and --id are "
					       "required");
	} else {
		if (optind + 1 != argc)
			return ctl_usage_error(cmd, "expected one TOKEN (or "
					       "'-' for stdin)");
		o->token = argv[optind];
	}
	if ((o->role == TOKEN_ROLE_BANKD || o->role == TOKEN_ROLE_CLIENT) &&
	    o->subject > RSPRO_ID_MAX)
		return ctl_usage_error(cmd, "bank and client ids are "
				       "0..%d, not %ld", RSPRO_ID_MAX,
				       o->subject);
	return CTL_EXIT_OK;
}

static int json_print(json_t *obj)
{
	char *text = obj ? json_dumps(obj, 0) : NULL;

	json_decref(obj);
	if (!text)
		return -1;
	puts(text);
	free(text);
	return 0;
}

static int cmd_token_issue(int argc, char **argv)
{
	static const char *cmd = "token issue";
	struct token_opts o = {
		.role = TOKEN_ROLE_ANY,
		.subject = TOKEN_SUBJECT_ANY,
		.ttl = 30 * 86400,
		.now = (int64_t)time(NULL),
	};
	struct token_keypair kp;
	struct token_claims c;
	char text[TOKEN_TEXT_MAX], err[512], token_id[33], key_id[17];
	int done, rc;

	rc = token_parse_opts(cmd, argc, argv, &o, &done);
	if (rc != CTL_EXIT_OK || done)
		return rc;

	rc = token_keypair_load(o.key, &kp, err, sizeof(err));
	if (rc < 0) {
		ctl_error(cmd, "%s", err);
		return CTL_EXIT_FAIL;
	}
	rc = token_issue(&kp, (enum token_role)o.role, (uint32_t)o.subject,
			 o.now, o.ttl, text, sizeof(text), &c);
	token_keypair_wipe(&kp);
	if (rc == TOKEN_ERR_INVALID) {
		ctl_error(cmd, "--ttl is too large");
		return CTL_EXIT_USAGE;
	}
	if (rc < 0) {
		ctl_error(cmd, "%s", token_strerror(rc));
		return CTL_EXIT_FAIL;
	}
	if (!o.json) {
		puts(text);
		return CTL_EXIT_OK;
	}
	token_id_hex(&c, token_id);
	token_key_id_hex(c.key_id, key_id);
	if (json_print(json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}",
				 "token", text, "token_id", token_id, "role",
				 token_role_name(c.role), "subject",
				 (json_int_t)c.subject, "issued",
				 (json_int_t)c.issued, "expires",
				 (json_int_t)c.expires, "key_id",
				 key_id)) < 0) {
		ctl_error(cmd, "out of memory");
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

/* Reads a token from stdin; surrounding blanks and newlines are dropped. */
static int read_token_stdin(char *buf, size_t len)
{
	size_t n = fread(buf, 1, len - 1, stdin);
	size_t start = 0;

	if (ferror(stdin) || (n == len - 1 && fgetc(stdin) != EOF))
		return -1;
	buf[n] = '\0';
	while (n && strchr(" \t\r\n", buf[n - 1]))
		buf[--n] = '\0';
	while (buf[start] && strchr(" \t\r\n", buf[start]))
		start++;
	memmove(buf, buf + start, n - start + 1);
	return 0;
}

/* Says why, with what the token holds where that helps. */
static void token_explain(int rc, const struct token_opts *o,
			  const struct token_claims *c, const char *text,
			  const uint8_t key_id[TOKEN_KEY_ID_LEN], char *buf,
			  size_t len)
{
	struct token_claims unverified;
	char t1[40], t2[40], k1[17], k2[17];

	switch (rc) {
	case TOKEN_ERR_EXPIRED:
		snprintf(buf, len, "token expired at %s (now %s)",
			 format_time(c->expires, t1, sizeof(t1)),
			 format_time(o->now, t2, sizeof(t2)));
		break;
	case TOKEN_ERR_NOT_YET_VALID:
		snprintf(buf, len, "token not yet valid: issued at %s (now "
			 "%s); check the clocks",
			 format_time(c->issued, t1, sizeof(t1)),
			 format_time(o->now, t2, sizeof(t2)));
		break;
	case TOKEN_ERR_ROLE:
		snprintf(buf, len, "token is for role %s, expected %s",
			 token_role_name(c->role),
			 token_role_name((enum token_role)o->role));
		break;
	case TOKEN_ERR_SUBJECT:
		snprintf(buf, len, "token is for %s id %u, expected %ld",
			 token_role_name(c->role), (unsigned int)c->subject,
			 o->subject);
		break;
	case TOKEN_ERR_KEY:
		token_parse_unverified(text, &unverified);
		token_key_id_hex(unverified.key_id, k1);
		token_key_id_hex(key_id, k2);
		snprintf(buf, len, "token was signed by another key (token "
			 "key id %s, %s has key id %s)", k1, o->key, k2);
		break;
	default:
		snprintf(buf, len, "%s", token_strerror(rc));
		break;
	}
}

static int cmd_token_verify(int argc, char **argv)
{
	static const char *cmd = "token verify";
	struct token_opts o = {
		.role = TOKEN_ROLE_ANY,
		.subject = TOKEN_SUBJECT_ANY,
		.skew = TOKEN_DEFAULT_SKEW,
		.now = (int64_t)time(NULL),
	};
	uint8_t pk[TOKEN_PK_LEN], key_id[TOKEN_KEY_ID_LEN];
	char input[4096], err[512], why[512];
	char issued[40], expires[40], token_id[33], kid[17];
	struct token_claims c;
	const char *text;
	int done, rc;

	rc = token_parse_opts(cmd, argc, argv, &o, &done);
	if (rc != CTL_EXIT_OK || done)
		return rc;
	text = o.token;
	if (!strcmp(text, "-")) {
		if (read_token_stdin(input, sizeof(input)) < 0) {
			ctl_error(cmd, "cannot read a token from stdin (read "
				  "error or longer than %zu bytes)",
				  sizeof(input) - 1);
			return CTL_EXIT_FAIL;
		}
		text = input;
	}
	rc = token_public_load(o.key, pk, key_id, err, sizeof(err));
	if (rc < 0) {
		ctl_error(cmd, "%s", err);
		return CTL_EXIT_FAIL;
	}

	rc = token_verify(text, pk, o.role, o.subject, o.now, o.skew, &c);
	if (rc < 0) {
		token_explain(rc, &o, &c, text, key_id, why, sizeof(why));
		ctl_error(cmd, "invalid: %s", why);
		if (o.json)
			json_print(json_pack("{s:b, s:s}", "valid", 0,
					     "error", why));
		return CTL_EXIT_FAIL;
	}

	format_time(c.issued, issued, sizeof(issued));
	format_time(c.expires, expires, sizeof(expires));
	token_id_hex(&c, token_id);
	token_key_id_hex(c.key_id, kid);
	if (o.json) {
		if (json_print(json_pack("{s:b, s:s, s:I, s:I, s:I, s:s, s:s}",
					 "valid", 1, "role",
					 token_role_name(c.role), "subject",
					 (json_int_t)c.subject, "issued",
					 (json_int_t)c.issued, "expires",
					 (json_int_t)c.expires, "token_id",
					 token_id, "key_id", kid)) < 0) {
			ctl_error(cmd, "out of memory");
			return CTL_EXIT_FAIL;
		}
		return CTL_EXIT_OK;
	}
	printf("valid\n"
	       "role:     %s\n"
	       "subject:  %u\n"
	       "issued:   %s\n"
	       "expires:  %s\n"
	       "token id: %s\n"
	       "key id:   %s\n",
	       token_role_name(c.role), (unsigned int)c.subject, issued,
	       expires, token_id, kid);
	return CTL_EXIT_OK;
}

int cmd_token(int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage_error("token", "expected 'issue' or 'verify'");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(token_usage, stdout);
		return CTL_EXIT_OK;
	}
	if (!strcmp(argv[1], "list") || !strcmp(argv[1], "revoke"))
		return cmd_token_api(argc, argv);
	if (!strcmp(argv[1], "issue")) {
		/* without a key file the server signs it (REST API) */
		for (int i = 2; i < argc; i++)
			if (!strcmp(argv[i], "--key") || !strcmp(argv[i], "-k") ||
			    !strncmp(argv[i], "--key=", 6) ||
			    !strncmp(argv[i], "-k", 2))
				return cmd_token_issue(argc - 1, argv + 1);
		for (int i = 2; i < argc; i++)
			if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
				return cmd_token_issue(argc - 1, argv + 1);
		return cmd_token_api(argc, argv);
	}
	if (!strcmp(argv[1], "verify"))
		return cmd_token_verify(argc - 1, argv + 1);
	return ctl_usage_error("token", "unknown subcommand '%s' (issue, "
			       "verify, list, revoke)", argv[1]);
}

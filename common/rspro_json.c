/*
 * rspro_json: JSON <-> RsproPDU by walking asn1c's type descriptors, so one
 * piece of code covers all 21 messages and every later extension. The JSON
 * form is the one of the osmo-remsim test vectors: component names as keys
 * in encoding order, enums by name, OCTET STRING as hex, IA5String as text.
 */
#include "rspro.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"

/* Universal tag numbers of the primitive types the module uses. */
enum rspro_kind {
	KIND_BOOLEAN = 1,
	KIND_INTEGER = 2,
	KIND_OCTETS = 4,
	KIND_ENUMERATED = 10,
	KIND_SEQUENCE = 16,
	KIND_IA5STRING = 22,
	KIND_CHOICE = 100,	/* untagged: has no universal tag */
	KIND_UNKNOWN = -1,
};

static enum rspro_kind rspro_kind_of(const asn_TYPE_descriptor_t *td)
{
	if (td->tags_count == 0)
		return td->elements_count > 0 ? KIND_CHOICE : KIND_UNKNOWN;
	if (BER_TAG_CLASS(td->tags[0]) != ASN_TAG_CLASS_UNIVERSAL)
		return KIND_UNKNOWN;
	switch (BER_TAG_VALUE(td->tags[0])) {
	case KIND_BOOLEAN:
	case KIND_INTEGER:
	case KIND_OCTETS:
	case KIND_ENUMERATED:
	case KIND_SEQUENCE:
	case KIND_IA5STRING:
		return (enum rspro_kind)BER_TAG_VALUE(td->tags[0]);
	default:
		return KIND_UNKNOWN;
	}
}

/* Size of the C object asn1c uses for a value of this type. */
static size_t rspro_value_size(const asn_TYPE_descriptor_t *td)
{
	switch (rspro_kind_of(td)) {
	case KIND_BOOLEAN:
		return sizeof(BOOLEAN_t);
	case KIND_INTEGER:
	case KIND_ENUMERATED:
		/* every INTEGER of the module is range-limited: native long */
		return sizeof(long);
	case KIND_OCTETS:
	case KIND_IA5STRING:
		return sizeof(OCTET_STRING_t);
	case KIND_SEQUENCE:
		return ((const asn_SEQUENCE_specifics_t *)td->specifics)
			->struct_size;
	case KIND_CHOICE:
		return ((const asn_CHOICE_specifics_t *)td->specifics)
			->struct_size;
	default:
		return 0;
	}
}

static int rspro_choice_present(const asn_TYPE_descriptor_t *td,
				const void *ptr)
{
	const asn_CHOICE_specifics_t *spec = td->specifics;
	const char *p = (const char *)ptr + spec->pres_offset;

	switch (spec->pres_size) {
	case sizeof(int):
		return *(const int *)p;
	case sizeof(short):
		return *(const short *)p;
	case sizeof(char):
		return *(const signed char *)p;
	default:
		return 0;
	}
}

static void rspro_choice_set_present(const asn_TYPE_descriptor_t *td,
				     void *ptr, int present)
{
	const asn_CHOICE_specifics_t *spec = td->specifics;
	char *p = (char *)ptr + spec->pres_offset;

	switch (spec->pres_size) {
	case sizeof(int):
		*(int *)p = present;
		break;
	case sizeof(short):
		*(short *)p = (short)present;
		break;
	case sizeof(char):
		*(signed char *)p = (signed char)present;
		break;
	}
}

static const void *rspro_member_ptr(const asn_TYPE_member_t *m,
				    const void *base)
{
	const void *p = (const char *)base + m->memb_offset;

	if (m->flags & ATF_POINTER)
		return *(const void *const *)p;
	return p;
}

/* ---- to JSON ---- */

static json_t *rspro_value_to_json(const asn_TYPE_descriptor_t *td,
				   const void *ptr);

static json_t *rspro_octets_to_json(const OCTET_STRING_t *os, int text)
{
	char *s;
	json_t *j;

	if (text)
		return json_stringn((const char *)os->buf, os->size);
	s = malloc(2 * (size_t)os->size + 1);
	if (!s)
		return NULL;
	hex_encode(s, os->buf, os->size);
	j = json_string(s);
	free(s);
	return j;
}

static json_t *rspro_members_to_json(const asn_TYPE_descriptor_t *td,
				     const void *ptr)
{
	json_t *obj = json_object();

	for (int i = 0; obj && i < td->elements_count; i++) {
		const asn_TYPE_member_t *m = &td->elements[i];
		const void *v = rspro_member_ptr(m, ptr);
		json_t *jv;

		if (!v)
			continue;	/* absent OPTIONAL */
		jv = rspro_value_to_json(m->type, v);
		if (!jv || json_object_set_new(obj, m->name, jv)) {
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

static json_t *rspro_value_to_json(const asn_TYPE_descriptor_t *td,
				   const void *ptr)
{
	switch (rspro_kind_of(td)) {
	case KIND_BOOLEAN:
		return json_boolean(*(const BOOLEAN_t *)ptr);
	case KIND_INTEGER:
		return json_integer(*(const long *)ptr);
	case KIND_ENUMERATED: {
		long v = *(const long *)ptr;
		const asn_INTEGER_specifics_t *spec = td->specifics;

		for (int i = 0; spec && i < spec->map_count; i++)
			if (spec->value2enum[i].nat_value == v)
				return json_string(spec->value2enum[i].enum_name);
		return json_integer(v);	/* a value newer than our module */
	}
	case KIND_OCTETS:
		return rspro_octets_to_json(ptr, 0);
	case KIND_IA5STRING:
		return rspro_octets_to_json(ptr, 1);
	case KIND_SEQUENCE:
		return rspro_members_to_json(td, ptr);
	case KIND_CHOICE: {
		int present = rspro_choice_present(td, ptr);
		const asn_TYPE_member_t *m;
		json_t *obj, *jv;

		if (present <= 0 || present > td->elements_count)
			return json_object();	/* unknown alternative */
		m = &td->elements[present - 1];
		jv = rspro_value_to_json(m->type, rspro_member_ptr(m, ptr));
		obj = json_object();
		if (!jv || !obj || json_object_set_new(obj, m->name, jv)) {
			json_decref(obj);
			return NULL;
		}
		return obj;
	}
	default:
		return NULL;
	}
}

json_t *rspro_to_json(const RsproPDU_t *pdu)
{
	return rspro_value_to_json(&asn_DEF_RsproPDU, pdu);
}

json_t *rspro_identity_to_json(const ComponentIdentity_t *id)
{
	return rspro_value_to_json(&asn_DEF_ComponentIdentity, id);
}

/* ---- from JSON ---- */

struct json_ctx {
	char *err;
	size_t errlen;
	char path[192];	/* where we are, for error messages */
};

#define JERR(ctx, ...)                                                       \
	do {                                                                 \
		if ((ctx)->err && (ctx)->errlen) {                           \
			int n_ = snprintf((ctx)->err, (ctx)->errlen, "%s: ", \
					  (ctx)->path[0] ? (ctx)->path : "PDU"); \
			if (n_ > 0 && (size_t)n_ < (ctx)->errlen)            \
				snprintf((ctx)->err + n_, (ctx)->errlen - n_, \
					 __VA_ARGS__);                       \
		}                                                            \
	} while (0)

static int rspro_value_from_json(struct json_ctx *ctx,
				 const asn_TYPE_descriptor_t *td,
				 const json_t *j, void *ptr);

static int rspro_octets_from_json(struct json_ctx *ctx, const json_t *j,
				  OCTET_STRING_t *os, int text)
{
	const char *s;
	size_t len;
	uint8_t *buf;
	ssize_t n;

	if (!json_is_string(j)) {
		JERR(ctx, "expected a %s string", text ? "text" : "hex");
		return -1;
	}
	s = json_string_value(j);
	len = json_string_length(j);
	if (text)
		return OCTET_STRING_fromBuf(os, s, (int)len);
	buf = malloc(len / 2 + 1);
	if (!buf)
		return -1;
	n = hex_decode(buf, len / 2 + 1, s);
	if (n < 0) {
		JERR(ctx, "not a hex string: \"%.40s\"", s);
		free(buf);
		return -1;
	}
	free(os->buf);
	os->buf = buf;
	os->size = (int)n;
	return 0;
}

static int rspro_enum_from_json(struct json_ctx *ctx,
				const asn_TYPE_descriptor_t *td,
				const json_t *j, long *out)
{
	const asn_INTEGER_specifics_t *spec = td->specifics;

	if (json_is_integer(j)) {
		*out = (long)json_integer_value(j);
		return 0;
	}
	if (json_is_string(j)) {
		for (int i = 0; spec && i < spec->map_count; i++) {
			if (strcmp(spec->value2enum[i].enum_name,
				   json_string_value(j)) == 0) {
				*out = spec->value2enum[i].nat_value;
				return 0;
			}
		}
	}
	JERR(ctx, "not a %s value", td->name);
	return -1;
}

/* Appends ".name" to the error path; returns the old length to restore. */
static size_t rspro_path_push(struct json_ctx *ctx, const char *name)
{
	size_t old = strlen(ctx->path);

	snprintf(ctx->path + old, sizeof(ctx->path) - old, "%s%s",
		 old ? "." : "", name);
	return old;
}

static int rspro_member_from_json(struct json_ctx *ctx,
				  const asn_TYPE_member_t *m, const json_t *jv,
				  void *base)
{
	void *slot = (char *)base + m->memb_offset;
	size_t old = rspro_path_push(ctx, m->name);
	int rc;

	if (m->flags & ATF_POINTER) {
		void **pp = slot;
		size_t size = rspro_value_size(m->type);

		if (!size) {
			JERR(ctx, "unsupported type");
			return -1;
		}
		*pp = calloc(1, size);
		if (!*pp) {
			JERR(ctx, "out of memory");
			return -1;
		}
		slot = *pp;
	}
	rc = rspro_value_from_json(ctx, m->type, jv, slot);
	ctx->path[old] = '\0';
	return rc;
}

static int rspro_members_from_json(struct json_ctx *ctx,
				   const asn_TYPE_descriptor_t *td,
				   const json_t *j, void *ptr)
{
	const char *key;
	json_t *jv;

	if (!json_is_object(j)) {
		JERR(ctx, "expected an object");
		return -1;
	}
	json_object_foreach((json_t *)j, key, jv) {
		int found = 0;

		for (int i = 0; i < td->elements_count; i++)
			if (strcmp(td->elements[i].name, key) == 0)
				found = 1;
		if (!found) {
			JERR(ctx, "unknown field \"%s\" in %s", key, td->name);
			return -1;
		}
	}
	for (int i = 0; i < td->elements_count; i++) {
		const asn_TYPE_member_t *m = &td->elements[i];

		jv = json_object_get(j, m->name);
		if (!jv) {
			if (m->optional || (m->flags & ATF_POINTER))
				continue;
			JERR(ctx, "missing field \"%s\" in %s", m->name,
			     td->name);
			return -1;
		}
		if (rspro_member_from_json(ctx, m, jv, ptr))
			return -1;
	}
	return 0;
}

static int rspro_value_from_json(struct json_ctx *ctx,
				 const asn_TYPE_descriptor_t *td,
				 const json_t *j, void *ptr)
{
	switch (rspro_kind_of(td)) {
	case KIND_BOOLEAN:
		if (!json_is_boolean(j)) {
			JERR(ctx, "expected true or false");
			return -1;
		}
		*(BOOLEAN_t *)ptr = json_is_true(j);
		return 0;
	case KIND_INTEGER:
		if (!json_is_integer(j)) {
			JERR(ctx, "expected an integer");
			return -1;
		}
		*(long *)ptr = (long)json_integer_value(j);
		return 0;
	case KIND_ENUMERATED:
		return rspro_enum_from_json(ctx, td, j, ptr);
	case KIND_OCTETS:
		return rspro_octets_from_json(ctx, j, ptr, 0);
	case KIND_IA5STRING:
		return rspro_octets_from_json(ctx, j, ptr, 1);
	case KIND_SEQUENCE:
		return rspro_members_from_json(ctx, td, j, ptr);
	case KIND_CHOICE: {
		const char *key;
		json_t *jv;

		if (!json_is_object(j) || json_object_size(j) != 1) {
			JERR(ctx, "expected an object with one of the %s "
				  "alternatives", td->name);
			return -1;
		}
		json_object_foreach((json_t *)j, key, jv) {
			for (int i = 0; i < td->elements_count; i++) {
				if (strcmp(td->elements[i].name, key))
					continue;
				rspro_choice_set_present(td, ptr, i + 1);
				return rspro_member_from_json(
					ctx, &td->elements[i], jv, ptr);
			}
			JERR(ctx, "unknown %s alternative \"%s\"", td->name,
			     key);
		}
		return -1;
	}
	default:
		JERR(ctx, "unsupported type %s", td->name);
		return -1;
	}
}

int rspro_from_json(const json_t *j, RsproPDU_t **out, char *err,
		    size_t errlen)
{
	struct json_ctx ctx = { .err = err, .errlen = errlen };
	RsproPDU_t *pdu = calloc(1, sizeof(*pdu));

	*out = NULL;
	if (!pdu)
		return RSPRO_ERR_NOMEM;
	if (rspro_value_from_json(&ctx, &asn_DEF_RsproPDU, j, pdu)) {
		rspro_pdu_free(pdu);
		return RSPRO_ERR_INVALID;
	}
	*out = pdu;
	return 0;
}

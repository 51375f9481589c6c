/*
 * hex: byte <-> hexadecimal text helpers.
 */
#include "hex.h"

void hex_encode(char *out, const uint8_t *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 0xf];
	}
	out[2 * len] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hex_is_separator(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':';
}

ssize_t hex_decode(uint8_t *out, size_t out_size, const char *text)
{
	size_t n = 0;
	int hi = -1;

	for (const char *p = text; *p; p++) {
		int d;

		if (hex_is_separator(*p)) {
			if (hi >= 0)
				return -1;	/* separator inside a byte */
			continue;
		}
		d = hex_digit(*p);
		if (d < 0)
			return -1;
		if (hi < 0) {
			hi = d;
			continue;
		}
		if (n >= out_size)
			return -1;
		out[n++] = (uint8_t)(hi << 4 | d);
		hi = -1;
	}
	if (hi >= 0)
		return -1;
	return (ssize_t)n;
}

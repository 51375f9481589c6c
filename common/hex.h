/*
 * hex: conversion between bytes and hexadecimal text, as used on command
 * lines, in JSON renderings of PDUs and in logs.
 */
#ifndef REMSIM_HEX_H
#define REMSIM_HEX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes 2*len lowercase digits and a NUL; out must hold 2*len+1 bytes. */
void hex_encode(char *out, const uint8_t *data, size_t len);

/*
 * Parses hex digits into out. Spaces, tabs, newlines and ':' between byte
 * pairs are skipped (so "3b 9f" and "3b:9f" work). Returns the number of
 * bytes, or -1 on a non-hex character, an odd digit count or overflow of
 * out_size.
 */
ssize_t hex_decode(uint8_t *out, size_t out_size, const char *text);

#endif

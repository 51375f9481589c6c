/* Force-included into the asn1c-generated code: compiles ASN_DEBUG out. */
#define ASN_DEBUG(...) ((void)0)

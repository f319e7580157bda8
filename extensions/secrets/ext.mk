# Extra link libraries of the secrets extension (included by the top-level
# Makefile and by ./Makefile): the value hashes use libcrypto's SHA-256.
EXT_LIBS_secrets := $(shell $(or $(PKG_CONFIG),pkg-config) --libs libcrypto)
EXT_CFLAGS_secrets := $(shell $(or $(PKG_CONFIG),pkg-config) --cflags libcrypto)

# The helm extension links libcrypto (SHA-256 of its values, kept in its state).
EXT_LIBS_helm := $(shell pkg-config --libs libcrypto)
EXT_CFLAGS_helm := $(shell pkg-config --cflags libcrypto)

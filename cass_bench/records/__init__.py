"""Records: their schema, identity, the store that writes them and the environment they carry."""

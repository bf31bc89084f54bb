"""The command line: `main()` (cli/main.py: options, dispatch, the error edge) and one module per
sub-command. A command reads its options, calls down (the pipeline for the publishing work; the
daemon, the server, the store's subscriber functions or `init`'s file writing for the rest), and
prints the result; it never re-implements a stage."""

import os

# Pydantic looks for plugins (observability hooks) by scanning the metadata of every installed
# distribution the first time a model is built, a noticeable part of every command's start-up, for
# plugins this tool does not use. Set PYDANTIC_DISABLE_PLUGINS yourself (even empty) to decide.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

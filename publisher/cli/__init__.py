"""The command line: `main()` and one module per sub-command. Commands only call the pipeline."""

import os

# Pydantic looks for plugins (observability hooks) by scanning the metadata of every installed
# distribution the first time a model is built: about 0.2 s of every command's start-up here, for
# plugins this tool does not use. Set PYDANTIC_DISABLE_PLUGINS yourself (even empty) to decide.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

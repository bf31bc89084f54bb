"""The command line: `main()` and one module per sub-command. Commands only call the pipeline."""

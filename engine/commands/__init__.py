"""One module per CLI subcommand; see engine/__main__.py."""

# Exit statuses scripts and the add-on tell apart.
EXIT_BAD_INPUT = 2  # a missing or malformed run, dataset, camera or option; the message names it
EXIT_MISSING_DEPENDENCY = 3  # this interpreter lacks the engine's packages

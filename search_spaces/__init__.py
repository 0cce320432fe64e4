"""Built-in search spaces (YAML), shipped inside the package as cifar_automl.search_spaces."""

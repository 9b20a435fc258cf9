"""Search: the controller (Optuna through Ray Tune), trials, results. Importing this package
does not import Ray; only the controller, searcher, trainable and callback modules do."""

"""FHA-Kitchens: the annotation loader, statistics from the released files, a synthetic mini-dataset in the same
format, and a three-track benchmark harness (detection, recognition, domain generalisation)."""

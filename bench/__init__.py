"""Hot paths measured by `make bench`."""

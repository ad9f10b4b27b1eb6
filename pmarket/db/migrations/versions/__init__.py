"""Migration scripts, applied in revision order by ``pmarket db upgrade``."""

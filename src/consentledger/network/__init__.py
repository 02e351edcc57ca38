"""Configuration of the permissioned networks the contracts run on beyond one machine."""

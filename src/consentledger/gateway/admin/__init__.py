"""An agency administrator's tasks beside the running gateway: set-up, key rotations, a one-off sweep."""

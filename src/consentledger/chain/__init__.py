"""Everything that talks to the chain: compiler, nodes, deployment, bindings."""

"""Finding memories: query analysis, candidate strategies, fusion and diversification."""

"""fediverse-stories: a self-hosted, federated story-sharing server."""

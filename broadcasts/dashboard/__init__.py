"""The marketers' workspace: the dashboard (what "View site" opens) and its server-drawn charts."""

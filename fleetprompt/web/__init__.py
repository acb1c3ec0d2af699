"""The Starlette application served by `fleetprompt serve`."""

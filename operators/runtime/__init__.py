"""What every component's shell shares (agent, controller, ingress, DNS): API login, the health and metrics
servers, the Event recorder, the sync loop and its periods, what is kept of each watched object, and the
command line's options and logging. See README.md."""

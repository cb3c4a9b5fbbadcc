"""Is the model still right here? Figures from the audit log and recorded outcomes."""

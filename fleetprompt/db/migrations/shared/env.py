from fleetprompt.db.migrations import run_on_given_connection

run_on_given_connection()

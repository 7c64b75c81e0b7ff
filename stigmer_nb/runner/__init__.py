"""The runner side: the ExecuteWorkflow activity and Stigmer's WorkflowSpec → DSL converter."""

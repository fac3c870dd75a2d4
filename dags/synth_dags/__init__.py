"""What the DAG files share: finding the domain YAMLs, and running one synth_core step inside a task.

Not a DAG folder of its own (`.airflowignore` skips it); the DAG files import it by name, since Airflow
puts the DAG folder on `sys.path`.
"""

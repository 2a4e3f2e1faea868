"""A script with no FunctionApp in it."""

VALUE = 1

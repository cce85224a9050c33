#!/bin/sh
# Deletes the instance: its folder goes.
set -e
rm -rf "${RHAIFLOW_EXAMPLE_ROOT:-/tmp/rhaiflow-three-tier}/$RHAIFLOW_INSTANCE"
echo "deleted $RHAIFLOW_INSTANCE"

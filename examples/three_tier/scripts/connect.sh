#!/bin/sh
# Before the web server is configured: write where its database is.
set -e
dir="${RHAIFLOW_EXAMPLE_ROOT:-/tmp/rhaiflow-three-tier}/$RHAIFLOW_INSTANCE"
mkdir -p "$dir"
echo "$RHAIFLOW_TARGET_INSTANCE $RHAIFLOW_INPUTS" > "$dir/database"
echo "$RHAIFLOW_OPERATION" >> "$dir/log"

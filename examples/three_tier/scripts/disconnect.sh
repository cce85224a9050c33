#!/bin/sh
set -e
dir="${RHAIFLOW_EXAMPLE_ROOT:-/tmp/rhaiflow-three-tier}/$RHAIFLOW_INSTANCE"
rm -f "$dir/database"
echo "$RHAIFLOW_OPERATION" >> "$dir/log"

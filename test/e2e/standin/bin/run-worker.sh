#!/bin/sh
role=worker
. /code/bin/standin.sh

#!/bin/sh
role=web
. /code/bin/standin.sh

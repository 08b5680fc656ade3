#!/bin/sh
# create-bucket.sh: creates the batch store's bucket ($BUCKET) through the
# SeaweedFS master ($MASTER) unless it exists, so it can run at every start.
set -eu
: "${BUCKET:?}" "${MASTER:?}"
if out=$(echo "s3.bucket.create -name $BUCKET" | weed shell -master="$MASTER" 2>&1); then
	echo "created bucket $BUCKET"
	exit 0
fi
case "$out" in
*"already exists"*)
	echo "bucket $BUCKET exists, kept"
	exit 0
	;;
esac
echo "$out" >&2
exit 1

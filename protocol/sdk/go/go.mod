module orchd.dev/sdk

go 1.22

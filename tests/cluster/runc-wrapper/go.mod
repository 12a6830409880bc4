module aksray.local/tests/cluster/runc-wrapper

go 1.24.0

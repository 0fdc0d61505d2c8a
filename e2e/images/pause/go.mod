module stv3.local/e2e-pause

go 1.22

// Package deploy holds no code: it is the home of the deployment files of
// Bulwark (Grafana dashboards, Prometheus rules, the Helm chart) and of the
// tests that check them against a running server (deploy_test.go).
package deploy

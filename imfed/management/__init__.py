"""The management role (互联管理服务器): registration, review, the CA, the directory."""

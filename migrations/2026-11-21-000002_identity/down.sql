DROP TRIGGER activity_log_append_only ON activity_log;
DROP FUNCTION activity_log_append_only();
DROP TABLE activity_log;
DROP TABLE api_tokens;
DROP TABLE refresh_tokens;
DROP TABLE recovery_codes;
DROP TABLE users;

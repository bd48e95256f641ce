# Tên các trạng thái hồ sơ: tờ khai (domain/declaration_state.rs) và hồ sơ xin giấy phép,
# kể cả giấy chứng nhận xuất xứ (domain/application_state.rs).

status-accepted = Đã tiếp nhận
status-under-inspection = Đang kiểm tra
status-cleared = Đã thông quan
status-rejected = Bị từ chối
status-withdrawn = Đã rút
status-submitted = Đã nộp
status-received = Đã tiếp nhận hồ sơ
status-supplement-requested = Yêu cầu bổ sung
status-supplemented = Đã bổ sung
status-under-review = Đang xem xét
status-issued = Đã cấp
status-refused = Từ chối cấp
status-awaiting-payment = Chờ nộp phí
status-cancelled = Đã hủy

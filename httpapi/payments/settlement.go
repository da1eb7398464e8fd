package payments

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"
)

// Settlement files (对账单), read row by row for reconciliation: each
// provider's file is parsed as a stream, one row at a time handed to fn,
// amounts parsed from decimal text without floating point. The caller keeps
// what it needs; nothing here holds more than one row.
//
//	stripe     the itemized balance change report (Reports API
//	           balance_change_from_activity.itemized, CSV): reporting_category
//	           charge / refund, gross in major units, currency (lower case),
//	           payment_intent_id (the column must be selected), created_utc
//	alipay     the daily trade detail bill (业务明细, CSV, GBK as downloaded, read
//	           as GB18030, or UTF-8 when its first 64 KiB are): lines
//	           starting with '#' are headers and footers; 支付宝交易号, 业务类型
//	           (交易 / 退款), 订单金额（元） (the refund amount on refund rows, negative),
//	           完成时间, 退款批次号/请求号
//	wechatpay  the trade bill (交易账单, bill_type=ALL): every field prefixed
//	           with '`'; 微信订单号, 交易状态 (SUCCESS / REFUND / REVOKED),
//	           应结订单金额 (总金额 in older bills), 退款金额, 货币种类, 交易时间,
//	           商户退款单号; columns by name, as WeChat Pay says their order may change; the
//	           summary after the line 总交易单数 is skipped

// SettlementKind is what a settlement row records.
type SettlementKind uint8

const (
	SettlementPayment SettlementKind = iota + 1
	SettlementRefund
)

// SettlementRow is one payment or refund in a provider's settlement file.
type SettlementRow struct {
	Kind          SettlementKind
	TransactionID string // the payment's id at the provider (pi_..., trade_no, transaction_id)
	RefundKey     string // a refund's request number (out_request_no, out_refund_no), if the file has it
	AmountMinor   int64  // positive, in minor units
	Currency      string // upper case; "" when the file does not say
	AtMs          int64  // when, 0 if the file does not say
	Line          int
}

// SettlementRowsMax bounds the rows of one file.
const SettlementRowsMax = 1_000_000

// ParseSettlement reads a provider's settlement file and calls fn for each
// payment and refund row. Rows of other kinds (payouts, fees, transfers)
// are skipped. An error names the line.
func ParseSettlement(provider string, r io.Reader, fn func(*SettlementRow) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, _ := br.Peek(3); string(b) == "\xef\xbb\xbf" { // a BOM, as Excel writes it
		br.Discard(3)
	}
	switch provider {
	case ProviderStripe:
		return parseCSVSettlement(br, ',', false, stripeRow, fn)
	case ProviderAlipay:
		if !peekUTF8(br) {
			// Alipay's bill download is GBK; a file saved as UTF-8 is
			// read as it is.
			br = bufio.NewReader(transform.NewReader(br, simplifiedchinese.GB18030.NewDecoder()))
		}
		return parseCSVSettlement(&skipHash{r: br}, ',', false, alipayRow, fn)
	case ProviderWeChatPay:
		return parseCSVSettlement(br, ',', true, wechatRow, fn)
	}
	return fmt.Errorf("no settlement format for %q (stripe, alipay or wechatpay)", provider)
}

// peekUTF8 reports whether the start of r (as much as its buffer holds)
// is UTF-8, a rune cut at the end of what is seen aside. It reads
// nothing.
func peekUTF8(r *bufio.Reader) bool {
	b, _ := r.Peek(r.Size())
	for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	return utf8.Valid(b)
}

type rowMapper func(col map[string]int, rec []string, row *SettlementRow) (bool, error)

var errStop = errors.New("end of rows")

func parseCSVSettlement(r io.Reader, comma rune, backticks bool, mapRow rowMapper, fn func(*SettlementRow) error) error {
	cr := csv.NewReader(r)
	cr.Comma, cr.FieldsPerRecord, cr.LazyQuotes, cr.ReuseRecord = comma, -1, true, true
	var col map[string]int
	for n := 0; n <= SettlementRowsMax; n++ {
		rec, err := cr.Read()
		if err == io.EOF {
			if col == nil {
				return errors.New("no header row")
			}
			return nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return fmt.Errorf("line %d: %v", line, err)
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
			if backticks {
				rec[i] = strings.TrimPrefix(rec[i], "`")
			}
		}
		if col == nil {
			col = map[string]int{}
			for i, name := range rec {
				col[name] = i
			}
			continue
		}
		row := SettlementRow{Line: line}
		ok, err := mapRow(col, rec, &row)
		if err == errStop {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %v", line, err)
		}
		if ok {
			if err := fn(&row); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("more than %d rows", SettlementRowsMax)
}

func field(col map[string]int, rec []string, name string) (string, error) {
	i, ok := col[name]
	if !ok {
		return "", fmt.Errorf("no column %q", name)
	}
	if i >= len(rec) {
		return "", nil
	}
	return rec[i], nil
}

// amount parses a decimal amount in major units, as the files write it:
// "-" allowed (refund rows), no floating point.
func amount(s string) (int64, error) {
	s = strings.TrimPrefix(strings.ReplaceAll(s, ",", ""), "+")
	neg := strings.HasPrefix(s, "-")
	n, err := ParseDecimalMinor(strings.TrimPrefix(s, "-"))
	if err != nil {
		return 0, fmt.Errorf("amount %q: %v", s, err)
	}
	if neg {
		n = -n
	}
	return n, nil
}

func parseTime(layout, s string, loc *time.Location) int64 {
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return 0
	}
	return t.UnixMilli()
}

func stripeRow(col map[string]int, rec []string, row *SettlementRow) (bool, error) {
	cat, err := field(col, rec, "reporting_category")
	if err != nil {
		return false, err
	}
	switch cat {
	case "charge":
		row.Kind = SettlementPayment
	case "refund":
		row.Kind = SettlementRefund
	default:
		return false, nil
	}
	if row.TransactionID, err = field(col, rec, "payment_intent_id"); err != nil {
		return false, fmt.Errorf("%v: select the payment_intent_id column in the report", err)
	}
	gross, _ := field(col, rec, "gross")
	if row.AmountMinor, err = amount(gross); err != nil {
		return false, err
	}
	if row.AmountMinor < 0 {
		row.AmountMinor = -row.AmountMinor
	}
	cur, _ := field(col, rec, "currency")
	row.Currency = strings.ToUpper(cur)
	at, _ := field(col, rec, "created_utc")
	row.AtMs = parseTime("2006-01-02 15:04:05", at, time.UTC)
	return row.TransactionID != "", nil
}

var beijingTime = time.FixedZone("CST", 8*3600)

func alipayRow(col map[string]int, rec []string, row *SettlementRow) (bool, error) {
	kind, err := field(col, rec, "业务类型")
	if err != nil {
		return false, err
	}
	switch kind {
	case "交易":
		row.Kind = SettlementPayment
	case "退款":
		row.Kind = SettlementRefund
	default:
		return false, nil
	}
	if row.TransactionID, err = field(col, rec, "支付宝交易号"); err != nil {
		return false, err
	}
	total, err := field(col, rec, "订单金额（元）")
	if err != nil {
		return false, err
	}
	if row.AmountMinor, err = amount(total); err != nil {
		return false, err
	}
	if row.AmountMinor < 0 {
		row.AmountMinor = -row.AmountMinor
	}
	row.Currency = "CNY"
	row.RefundKey, _ = field(col, rec, "退款批次号/请求号")
	at, _ := field(col, rec, "完成时间")
	row.AtMs = parseTime("2006-01-02 15:04:05", at, beijingTime)
	return row.TransactionID != "", nil
}

func wechatRow(col map[string]int, rec []string, row *SettlementRow) (bool, error) {
	if len(rec) > 0 && strings.HasPrefix(rec[0], "总交易单数") {
		return false, errStop // the summary follows
	}
	state, err := field(col, rec, "交易状态")
	if err != nil {
		return false, err
	}
	// 应结订单金额 since 2017; the bill before it has 总金额 in its place.
	name := "应结订单金额"
	if _, ok := col[name]; !ok {
		name = "总金额"
	}
	switch state {
	case "SUCCESS":
		row.Kind = SettlementPayment
	case "REFUND", "REVOKED":
		row.Kind, name = SettlementRefund, "退款金额"
	default:
		return false, nil
	}
	if row.TransactionID, err = field(col, rec, "微信订单号"); err != nil {
		return false, err
	}
	v, err := field(col, rec, name)
	if err != nil {
		return false, err
	}
	if row.AmountMinor, err = amount(v); err != nil {
		return false, err
	}
	cur, _ := field(col, rec, "货币种类")
	switch cur {
	case "CNY", "":
		row.Currency = "CNY"
	default:
		row.Currency = strings.ToUpper(cur)
	}
	row.RefundKey, _ = field(col, rec, "商户退款单号")
	at, _ := field(col, rec, "交易时间")
	row.AtMs = parseTime("2006-01-02 15:04:05", at, beijingTime)
	return row.TransactionID != "", nil
}

// skipHash drops the lines that start with '#' (Alipay's bill headers and
// footers) from a stream.
type skipHash struct {
	r    *bufio.Reader
	rest []byte
}

func (s *skipHash) Read(p []byte) (int, error) {
	for len(s.rest) == 0 {
		line, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: pass it through in parts.
			s.rest = line
			break
		}
		if len(line) > 0 && line[0] != '#' {
			s.rest = line
		}
		if err != nil && len(s.rest) == 0 {
			return 0, err
		}
		if err != nil {
			break
		}
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	return n, nil
}

package ledger

import "plinth.dev/plinth/capabilities/domainerr"

// currencies holds the active alphabetic codes of ISO 4217 (list one) that
// a ledger can count in integer minor units: every national and regional
// currency, and the fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI,
// UYW). Left out, because they have no minor unit ("N.A." in the standard)
// and so no integer amount means anything in them: the precious metals
// (XAU, XAG, XPD, XPT), the bond-market units (XBA, XBB, XBC, XBD), the IMF's
// and regional units of account (XDR, XSU, XUA), the testing code XTS and
// the code that means "no currency" (X, X, X). Codes the standard withdrew are left out as well
// (HRK, ZWL, ANG, SLL, ...): ISO 4217 list three keeps them for history, a
// ledger must not open accounts in them.
//
// When the standard changes (an amendment adds or withdraws a code), change
// this list; accounts already open in a withdrawn code keep working, since
// only OpenLedgerAccount and MoveMoney check the code.
var currencies = map[string]struct{}{
	"AED": {}, "AFN": {}, "ALL": {}, "AMD": {}, "AOA": {}, "ARS": {}, "AUD": {}, "AWG": {}, "AZN": {},
	"BAM": {}, "BBD": {}, "BDT": {}, "BGN": {}, "BHD": {}, "BIF": {}, "BMD": {}, "BND": {}, "BOB": {},
	"BOV": {}, "BRL": {}, "BSD": {}, "BTN": {}, "BWP": {}, "BYN": {}, "BZD": {},
	"CAD": {}, "CDF": {}, "CHE": {}, "CHF": {}, "CHW": {}, "CLF": {}, "CLP": {}, "CNY": {}, "COP": {},
	"COU": {}, "CRC": {}, "CUC": {}, "CUP": {}, "CVE": {}, "CZK": {},
	"DJF": {}, "DKK": {}, "DOP": {}, "DZD": {},
	"EGP": {}, "ERN": {}, "ETB": {}, "EUR": {},
	"FJD": {}, "FKP": {},
	"GBP": {}, "GEL": {}, "GHS": {}, "GIP": {}, "GMD": {}, "GNF": {}, "GTQ": {}, "GYD": {},
	"HKD": {}, "HNL": {}, "HTG": {}, "HUF": {},
	"IDR": {}, "ILS": {}, "INR": {}, "IQD": {}, "IRR": {}, "ISK": {},
	"JMD": {}, "JOD": {}, "JPY": {},
	"KES": {}, "KGS": {}, "KHR": {}, "KMF": {}, "KPW": {}, "KRW": {}, "KWD": {}, "KYD": {}, "KZT": {},
	"LAK": {}, "LBP": {}, "LKR": {}, "LRD": {}, "LSL": {}, "LYD": {},
	"MAD": {}, "MDL": {}, "MGA": {}, "MKD": {}, "MMK": {}, "MNT": {}, "MOP": {}, "MRU": {}, "MUR": {},
	"MVR": {}, "MWK": {}, "MXN": {}, "MXV": {}, "MYR": {}, "MZN": {},
	"NAD": {}, "NGN": {}, "NIO": {}, "NOK": {}, "NPR": {}, "NZD": {},
	"OMR": {},
	"PAB": {}, "PEN": {}, "PGK": {}, "PHP": {}, "PKR": {}, "PLN": {}, "PYG": {},
	"QAR": {},
	"RON": {}, "RSD": {}, "RUB": {}, "RWF": {},
	"SAR": {}, "SBD": {}, "SCR": {}, "SDG": {}, "SEK": {}, "SGD": {}, "SHP": {}, "SLE": {}, "SOS": {},
	"SRD": {}, "SSP": {}, "STN": {}, "SVC": {}, "SYP": {}, "SZL": {},
	"THB": {}, "TJS": {}, "TMT": {}, "TND": {}, "TOP": {}, "TRY": {}, "TTD": {}, "TWD": {}, "TZS": {},
	"UAH": {}, "UGX": {}, "USD": {}, "USN": {}, "UYI": {}, "UYU": {}, "UYW": {}, "UZS": {},
	"VED": {}, "VES": {}, "VND": {}, "VUV": {},
	"WST": {},
	"XAF": {}, "XCD": {}, "XCG": {}, "XOF": {}, "XPF": {},
	"YER": {},
	"ZAR": {}, "ZMW": {}, "ZWG": {},
}

// IsCurrency reports whether code is an active ISO 4217 currency code the
// ledger accepts, such as "USD". Codes are upper case: "usd" is not one.
func IsCurrency(code string) bool {
	_, ok := currencies[code]
	return ok
}

// checkCurrency returns the error for a request whose currency field is not
// an ISO 4217 code the ledger accepts, or nil.
func checkCurrency(code string) error {
	if !IsCurrency(code) {
		return &domainerr.InvalidArgumentError{Field: "currency", Description: "is not an ISO 4217 currency code"}
	}
	return nil
}

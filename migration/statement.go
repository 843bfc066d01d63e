package migration

import (
	"partnerd/apperr"
	"partnerd/models"
)

// Statement is the Sub-Customer Data Transfer Statement the source partner
// acknowledges when it approves a migration, in one locale.
type Statement struct {
	Version string
	Locale  string
	Title   string
	Text    string
}

// StatementVersion is the version of the statement in force; an
// acknowledgement records it.
const StatementVersion = "2025-11-20"

var statements = map[models.Locale]Statement{
	models.LocaleEnUS: {
		Version: StatementVersion,
		Locale:  string(models.LocaleEnUS),
		Title:   "Sub-Customer Data Transfer Statement",
		Text: `By approving this migration, you, the transferring partner, confirm that:

1. You have agreed with the receiving partner and with each sub-customer in this batch on the migration, and settled every contractual and financial matter between you (credit, outstanding bills, discounts, services under way).
2. From the effective time of the migration, the receiving partner manages each migrated sub-customer: it sees the sub-customer's account information, usage and expenditure from then on, sets its credit, budget and suspension policy, and settles its bills.
3. The sub-customer's data kept by the Partner Center for partner management — account profile, contact details, budget settings, and usage and expenditure records from the effective time — becomes available to the receiving partner. Usage and expenditure before the effective time stays with you and is billed to you, including charges reported late by cloud products.
4. The credit you allocated to each migrated sub-customer returns to your allocatable credit at the effective time; the receiving partner allocates the credit stated in the batch.
5. You have informed each sub-customer of this transfer of management and of its data, as your agreement with them and applicable law require.

The platform reviews the migration after your approval and notifies all parties of the result by in-site message, email and SMS.`,
	},
	models.LocaleZhCN: {
		Version: StatementVersion,
		Locale:  string(models.LocaleZhCN),
		Title:   "子客户数据转移声明",
		Text: `批准本次迁移即表示您（转出合作伙伴）确认：

1. 您已就迁移事宜与接收合作伙伴及本批次中的每一位子客户达成一致，并已处理完毕各方之间的全部合同与财务事项（信用额度、未结账单、折扣、进行中的服务等）。
2. 自迁移生效时间起，由接收合作伙伴管理每一位已迁移的子客户：其可查看该子客户自该时间起的账号信息、用量与消费，设置其信用额度、预算与停服策略，并结算其账单。
3. 合作伙伴中心为合作伙伴管理而保存的子客户数据——账号资料、联系方式、预算设置，以及自生效时间起的用量与消费记录——将向接收合作伙伴开放。生效时间之前的用量与消费（包括云产品延迟出账的费用）仍归属于您并由您结算。
4. 您为每一位已迁移子客户分配的信用额度将于生效时间退回您的可分配额度；接收合作伙伴按批次中所列额度为其分配信用额度。
5. 您已按照与子客户的约定及适用法律，告知每一位子客户本次管理权及其数据的转移。

您批准后，平台将对本次迁移进行内部审核，并通过站内信、邮件和短信将结果通知各方。`,
	},
}

// StatementFor returns the statement in locale, or in en-US when the
// locale has none.
func StatementFor(locale models.Locale) Statement {
	if st, ok := statements[locale]; ok {
		return st
	}
	return statements[models.LocaleEnUS]
}

// StatementIn returns the statement in locale ("" for def, the caller's),
// VALIDATION for a locale it is not written in.
func StatementIn(locale string, def models.Locale) (Statement, error) {
	if locale == "" {
		return StatementFor(def), nil
	}
	st, ok := statements[models.Locale(locale)]
	if !ok {
		return Statement{}, apperr.Invalid("locale", "the statement exists in en-US and zh-CN")
	}
	return st, nil
}

//! Which accounts a block may have changed the native balance of, from its call traces: every
//! transaction's sender (it pays gas), and both sides of every transfer of value — top-level
//! or internal (a contract sending ETH), contract creation with value, self-destruct
//! beneficiaries. The block's fee recipient and withdrawals are added by the chain adapter,
//! which has the header.
//!
//! Over-reporting costs a re-read; under-reporting would hide a change, so anything that may
//! have moved value counts (a reverted call included).

use std::collections::BTreeSet;

use alloy::primitives::Address;
use alloy::rpc::types::trace::geth::CallFrame;
use alloy::rpc::types::trace::parity::{Action, TraceOutput, TransactionTrace};

/// Adds the accounts of one transaction's `callTracer` frame tree (geth's
/// `debug_traceBlockByNumber`).
pub fn call_frame_accounts(top: &CallFrame, accounts: &mut BTreeSet<Address>) {
    // The sender pays for gas even when nothing else moves.
    accounts.insert(top.from);
    let mut frames = vec![top];
    while let Some(frame) = frames.pop() {
        frames.extend(frame.calls.iter());
        // A delegate call runs another contract's code in the caller's context and a static
        // call cannot move value: neither transfers anything of its own.
        let kind = frame.typ.to_ascii_uppercase();
        if kind == "DELEGATECALL" || kind == "STATICCALL" {
            continue;
        }
        let moves_value = frame.value.is_some_and(|v| !v.is_zero());
        // A self-destruct sends the whole balance, whatever `value` says.
        if moves_value || kind == "SELFDESTRUCT" {
            accounts.insert(frame.from);
            accounts.extend(frame.to);
        }
    }
}

/// Adds the accounts of one trace of a Parity-style `trace_block` answer.
pub fn parity_trace_accounts(trace: &TransactionTrace, accounts: &mut BTreeSet<Address>) {
    match &trace.action {
        Action::Call(call) => {
            if trace.trace_address.is_empty() {
                accounts.insert(call.from);
            }
            let static_or_delegate = matches!(
                call.call_type,
                alloy::rpc::types::trace::parity::CallType::StaticCall
                    | alloy::rpc::types::trace::parity::CallType::DelegateCall
            );
            if !call.value.is_zero() && !static_or_delegate {
                accounts.insert(call.from);
                accounts.insert(call.to);
            }
        }
        Action::Create(create) => {
            if trace.trace_address.is_empty() {
                accounts.insert(create.from);
            }
            if !create.value.is_zero() {
                accounts.insert(create.from);
                if let Some(TraceOutput::Create(out)) = &trace.result {
                    accounts.insert(out.address);
                }
            }
        }
        Action::Selfdestruct(destruct) => {
            accounts.insert(destruct.address);
            accounts.insert(destruct.refund_address);
        }
        Action::Reward(reward) => {
            accounts.insert(reward.author);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const SENDER: Address = address!("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
    const WALLET: Address = address!("0x70997970c51812dc3a010c7d01b50e0d17dc79c8");
    const CONTRACT: Address = address!("0x5fbdb2315678afecb367f032d93f642f64180aa3");
    const BYSTANDER: Address = address!("0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc");

    #[test]
    fn a_contract_sending_eth_names_its_recipient() {
        // The sender calls a contract with no value; the contract sends ETH to WALLET and
        // makes a static call that moves nothing.
        let frame: CallFrame = serde_json::from_value(serde_json::json!({
            "from": SENDER, "to": CONTRACT, "input": "0x", "type": "CALL", "value": "0x0",
            "calls": [
                {"from": CONTRACT, "to": WALLET, "input": "0x", "type": "CALL", "value": "0x10"},
                {"from": CONTRACT, "to": BYSTANDER, "input": "0x", "type": "STATICCALL"}
            ]
        }))
        .unwrap();
        let mut accounts = BTreeSet::new();
        call_frame_accounts(&frame, &mut accounts);
        assert_eq!(accounts, [SENDER, CONTRACT, WALLET].into());
    }

    #[test]
    fn a_plain_transfer_and_a_self_destruct() {
        let plain: CallFrame = serde_json::from_value(serde_json::json!({
            "from": SENDER, "to": WALLET, "gas": "0x0", "gasUsed": "0x5208", "input": "0x",
            "value": "0x1000", "type": "CALL"
        }))
        .unwrap();
        let destruct: CallFrame = serde_json::from_value(serde_json::json!({
            "from": BYSTANDER, "to": CONTRACT, "input": "0x", "type": "CALL",
            "calls": [{"from": CONTRACT, "to": WALLET, "input": "0x", "type": "SELFDESTRUCT"}]
        }))
        .unwrap();
        let mut accounts = BTreeSet::new();
        call_frame_accounts(&plain, &mut accounts);
        assert_eq!(accounts, [SENDER, WALLET].into());
        let mut accounts = BTreeSet::new();
        call_frame_accounts(&destruct, &mut accounts);
        assert_eq!(accounts, [BYSTANDER, CONTRACT, WALLET].into());
    }

    #[test]
    fn parity_traces_name_senders_and_value_recipients() {
        let traces: Vec<TransactionTrace> = serde_json::from_value(serde_json::json!([
            {"action": {"from": SENDER, "callType": "call", "gas": "0x0", "input": "0x",
                        "to": CONTRACT, "value": "0x0"},
             "result": {"gasUsed": "0x0", "output": "0x"}, "subtraces": 2,
             "traceAddress": [], "type": "call"},
            {"action": {"from": CONTRACT, "callType": "call", "gas": "0x0", "input": "0x",
                        "to": WALLET, "value": "0x5"},
             "result": {"gasUsed": "0x0", "output": "0x"}, "subtraces": 0,
             "traceAddress": [0], "type": "call"},
            {"action": {"from": CONTRACT, "callType": "delegatecall", "gas": "0x0",
                        "input": "0x", "to": BYSTANDER, "value": "0x5"},
             "result": {"gasUsed": "0x0", "output": "0x"}, "subtraces": 0,
             "traceAddress": [1], "type": "call"}
        ]))
        .unwrap();
        let mut accounts = BTreeSet::new();
        for trace in &traces {
            parity_trace_accounts(trace, &mut accounts);
        }
        assert_eq!(accounts, [SENDER, CONTRACT, WALLET].into());
    }
}

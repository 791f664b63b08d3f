//! Text the generated conversations are made of: questions with `{slot}` placeholders, answer
//! sentences and the values slots are filled with, per kind of application.
//!
//! Kept apart from the trace shapes in `traffic.rs` so that either can change alone. The text is
//! varied on purpose: full-text search, message rendering and token accounting should see prose
//! that looks like what real support, research and retrieval applications exchange.

/// Fills `{slot}` placeholders with a value picked by `pick` (called with the slot's name).
pub(crate) fn fill(template: &str, mut pick: impl FnMut(&str) -> &'static str) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                out.push_str(pick(&after[..close]));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Values for the slots the questions and answers use; unknown slot names get `it`.
pub(crate) fn slot_values(slot: &str) -> &'static [&'static str] {
    match slot {
        "order" => &[
            "A-10482", "A-20931", "B-33107", "A-48215", "C-51960", "B-60274", "A-77813", "C-80442",
            "B-91536", "A-99021",
        ],
        "product" => &[
            "Aero 2 headphones",
            "Nimbus smart thermostat",
            "Trail X running shoes",
            "Lumen desk lamp",
            "Orbit robot vacuum",
            "Pulse fitness tracker",
            "Atlas standing desk",
            "Echo Mini speaker",
        ],
        "day" => &[
            "on Monday",
            "yesterday",
            "last Friday",
            "three days ago",
            "on the 14th",
        ],
        "country" => &[
            "Canada",
            "Norway",
            "Japan",
            "Brazil",
            "Ireland",
            "New Zealand",
            "Mexico",
        ],
        "plan" => &["Pro", "Team", "Starter", "Enterprise"],
        "topic" => &[
            "retrieval-augmented generation",
            "speculative decoding",
            "mixture-of-experts routing",
            "LLM evaluation with model judges",
            "prompt injection defenses",
            "long-context attention",
            "quantization of 70B models",
            "agent memory architectures",
            "synthetic data for fine-tuning",
            "vector database indexing",
        ],
        "tech_a" => &[
            "pgvector",
            "Postgres full-text search",
            "LoRA",
            "vLLM",
            "Kafka",
        ],
        "tech_b" => &[
            "Qdrant",
            "Elasticsearch",
            "full fine-tuning",
            "TensorRT-LLM",
            "Redpanda",
        ],
        "usecase" => &[
            "a 50M-document corpus",
            "a latency-sensitive chat product",
            "a team of three engineers",
            "on-premise deployment",
            "multilingual support",
        ],
        "idp" => &[
            "Okta",
            "Azure AD",
            "Google Workspace",
            "OneLogin",
            "Keycloak",
        ],
        "api" => &[
            "/v2/search",
            "/v2/documents",
            "/v2/embeddings",
            "/v2/export",
            "/v2/webhooks",
        ],
        "feature" => &[
            "customer-managed keys",
            "audit log export",
            "private networking",
            "data residency",
            "SCIM provisioning",
        ],
        "clause" => &["4.2", "7.1", "9.3", "11.5", "12.4"],
        "region" => &["eu-west-1", "us-east-2", "ap-southeast-1", "eu-central-1"],
        "carrier" => &["UPS", "DHL", "FedEx", "USPS", "PostNord"],
        "status" => &["shipped", "processing", "delivered", "out for delivery"],
        _ => &["it"],
    }
}

/// What a support assistant is asked.
pub(crate) const SUPPORT_QUESTIONS: &[&str] = &[
    "Where is my order {order}? It was supposed to arrive {day}.",
    "I was charged twice for order {order}. Can you refund one of the charges?",
    "How do I reset my password? The reset email never arrives.",
    "Can I change the shipping address on order {order}? I moved last week.",
    "My {product} stopped working after the latest firmware update. Any ideas?",
    "Do you ship to {country}, and how long does delivery usually take?",
    "I want to cancel my {plan} subscription before the next billing date.",
    "The {product} I received is damaged. What are my options?",
    "Is there a student discount on the {plan} plan?",
    "Order {order} says delivered but nothing is at my door. What should I do?",
    "How do I pair the {product} with a second phone?",
    "Can I return the {product} if I already opened the box?",
];

/// What a support assistant answers with.
pub(crate) const SUPPORT_SENTENCES: &[&str] = &[
    "I checked your order and it left our warehouse {day}; {carrier} shows it as {status}.",
    "I'm sorry about the trouble, that is not the experience we want you to have.",
    "I have opened a ticket with our billing team and they will reverse the duplicate charge within 3 to 5 business days.",
    "You can reset your password from the sign-in page by choosing Forgot password; the link stays valid for 30 minutes.",
    "If the email does not arrive, please check your spam folder and make sure the address on file is correct.",
    "Unplug the {product} for ten seconds, then hold the power button until the light blinks twice to restore factory settings.",
    "We ship to {country}; standard delivery takes 5 to 8 business days and express takes 2 to 3.",
    "Your {plan} subscription will stay active until the end of the current billing period, and you will not be charged again.",
    "Returns are free within 30 days, even if the box has been opened, as long as all accessories are included.",
    "I've emailed you a prepaid return label; drop the package at any {carrier} location.",
    "A replacement for the damaged {product} will ship today at no cost to you.",
    "Our records show the order was delivered to the front desk, so it may be worth checking with your building manager.",
    "If the package does not turn up within 48 hours, reply here and we will send a replacement.",
    "To pair a second phone, open the app, go to Devices, and choose Add another device.",
    "I've updated the shipping address; the new label will be generated before the order leaves the warehouse.",
    "Is there anything else I can help you with today?",
    "Thanks for your patience while I looked into this.",
];

/// What a research assistant is asked.
pub(crate) const RESEARCH_QUESTIONS: &[&str] = &[
    "Summarize the latest research on {topic} and list the three most cited papers.",
    "Compare {tech_a} and {tech_b} for {usecase}. Which one should we pick and why?",
    "Find recent benchmarks for {topic} and explain how they were measured.",
    "Write a one-page brief on {topic} for a non-technical leadership audience.",
    "What are the open problems in {topic}? Give me concrete examples.",
    "Draft a reading list on {topic} for an engineer joining the team next week.",
    "Is {tech_a} mature enough for {usecase}? Look for production case studies.",
];

/// What a research assistant answers with.
pub(crate) const RESEARCH_SENTENCES: &[&str] = &[
    "Recent work on {topic} converges on a few ideas: smaller specialised components, better evaluation, and tighter feedback loops.",
    "The most cited papers from the last two years focus on scaling behaviour rather than new architectures.",
    "Benchmarks are often measured on a single GPU with batch size one, which flatters latency and hides throughput limits.",
    "For {usecase}, {tech_a} is simpler to operate, while {tech_b} scales further before it needs careful tuning.",
    "Several teams report that the choice mattered less than the quality of their evaluation set.",
    "Three caveats apply: results depend heavily on the data mix, many studies are not reproducible, and costs are rarely reported.",
    "In short, start with the simpler option, measure on your own traffic, and revisit the decision when you outgrow it.",
    "An open problem is how to evaluate long multi-step tasks where partial credit matters.",
    "The strongest evidence comes from ablations that change one variable at a time on a fixed budget.",
    "Production case studies describe a gradual rollout behind a feature flag, with shadow traffic to compare outputs.",
    "I could not find an independent replication of the headline number, so treat it as preliminary.",
    "Here is a reading order that goes from fundamentals to the current state of the art.",
    "Leadership should know that the technique lowers cost per request but adds operational complexity.",
];

/// What a documentation question-answering API is asked.
pub(crate) const RAG_QUESTIONS: &[&str] = &[
    "What does clause {clause} of the enterprise agreement say about data retention?",
    "How do I configure SSO with {idp}?",
    "What is the rate limit for the {api} endpoint?",
    "Which regions support {feature}?",
    "Is {feature} available on the {plan} plan?",
    "How do I rotate the API key used by the {api} endpoint without downtime?",
    "What happens to my data in {region} if I close the account?",
];

/// What a documentation question-answering API answers with.
pub(crate) const RAG_SENTENCES: &[&str] = &[
    "According to section {clause} of the enterprise agreement, customer data is retained for 30 days after termination and then deleted.",
    "To configure SSO with {idp}, create a SAML application, paste the metadata URL from the admin console, and map the email attribute.",
    "The {api} endpoint allows 600 requests per minute per workspace; bursts above that receive HTTP 429 with a Retry-After header.",
    "{feature} is available in eu-west-1, eu-central-1, us-east-2 and ap-southeast-1.",
    "{feature} is included in the Enterprise plan and available as an add-on for the {plan} plan.",
    "Create a second key, deploy it, confirm traffic has moved, then revoke the old key from the API keys page.",
    "Backups in {region} are encrypted at rest and expire 35 days after the account is closed.",
    "The documentation does not cover this case explicitly, so I recommend contacting support to confirm.",
    "Sources: Admin guide, chapter 4; Security whitepaper, page 12.",
    "Note that changes to SSO settings take up to five minutes to propagate.",
];

/// Instructions each kind of application gives its model.
pub(crate) const SUPPORT_SYSTEM: &str = "You are Nova, the customer support assistant for Acme Devices. Be concise and friendly. Use the tools to look up orders and the knowledge base before answering. Never promise refunds above $200 without creating a ticket. Do not reveal internal notes.";
/// Instructions for the research assistant.
pub(crate) const RESEARCH_SYSTEM: &str = "You are a careful research assistant. Search the web before answering, cite your sources with URLs, separate evidence from opinion, and say when you are unsure. Prefer primary sources and recent publications.";
/// Instructions for the documentation assistant.
pub(crate) const RAG_SYSTEM: &str = "Answer the question using only the provided documentation excerpts. If the excerpts do not contain the answer, say so. Quote section numbers when you rely on them. Keep answers under 150 words.";

/// Knowledge base article titles the support tools return.
pub(crate) const KB_TITLES: &[&str] = &[
    "Tracking your shipment",
    "Requesting a refund",
    "Resetting your password",
    "Factory reset instructions",
    "International shipping rates",
    "Managing your subscription",
    "Returns and exchanges policy",
    "Pairing multiple devices",
];

/// Web pages the research tools find.
pub(crate) const WEB_RESULTS: &[(&str, &str)] = &[
    (
        "A survey of retrieval-augmented generation",
        "https://arxiv.org/abs/2312.10997",
    ),
    (
        "Fast inference via speculative decoding",
        "https://arxiv.org/abs/2211.17192",
    ),
    (
        "Switch Transformers: scaling to trillion parameter models",
        "https://arxiv.org/abs/2101.03961",
    ),
    (
        "Judging LLM-as-a-judge with MT-Bench",
        "https://arxiv.org/abs/2306.05685",
    ),
    (
        "Ignore previous prompt: attack techniques for language models",
        "https://arxiv.org/abs/2211.09527",
    ),
    (
        "Lost in the middle: how language models use long contexts",
        "https://arxiv.org/abs/2307.03172",
    ),
    (
        "GPTQ: accurate post-training quantization",
        "https://arxiv.org/abs/2210.17323",
    ),
    (
        "Efficient memory management for LLM serving with PagedAttention",
        "https://arxiv.org/abs/2309.06180",
    ),
    (
        "pgvector vs dedicated vector databases: a production story",
        "https://engineering.example.com/pgvector-at-scale",
    ),
    (
        "What we learned running LLM agents in production",
        "https://blog.example.org/agents-in-production",
    ),
];

/// Documentation passages the retrieval step returns.
pub(crate) const DOC_TITLES: &[&str] = &[
    "Enterprise agreement - data retention",
    "Single sign-on with SAML",
    "API rate limits",
    "Regions and data residency",
    "Plans and add-ons",
    "Rotating API keys",
    "Account closure and backups",
    "Security whitepaper",
];

"""The rule layer: match the tables in `patterns.py`, with negation, hypothetical and knowledge-question
filters, resolved episodes, and the numeric infant-fever check.

Self-harm is exempt from every filter that could drop a report (knowledge question, resolved episode):
a missed crisis costs far more than an extra line of crisis contacts. Explicit denials ("I'm not
suicidal") are still respected through the negation check.
"""

from __future__ import annotations

import re

from medchat.app.triage.patterns import RULES, Rule
from medchat.app.triage.text import NEGATORS_ZH, negates

# ---- context: clauses, negation, hypotheticals, knowledge questions, resolved episodes --------
_BREAK = re.compile(r"[.!?;:,\n。！？；：，、]|\bbut\b|\bhowever\b|但是|但|可是|不过")
_NEG_ZH = re.compile(rf"({NEGATORS_ZH})(有|感到|觉得|出现|什么|任何|再|发生|想|打算|会)?$")
_HYPO = re.compile(r"\b(if|whether|in case|suppose|supposing|what happens when|what to do when|when someone|when a person|"
                   r"should someone|someone who|a person who|people who|patients? who)\b|如果|万一|假如|要是|假设|遇到|碰到|"
                   r"(剧|小说|电影|(?<![明断])书|戏|影片|游戏|动画|漫画)(里|中)")  # a plot, not 说明书里 or 药片里
_KNOW_EN = re.compile(r"^\W*(what|which|how|why|when|is|are|can|could|does|do|should|tell me|explain|list|describe|define)\b.*\b("
                      r"signs?|symptoms?|warning|causes?|caused|mean|means|meaning|indicates?|recogni[sz]e|tell if|know if|spot|"
                      r"identify|prevent\w*|risks?|difference|differ|first aid|treat\w*|cures?|happens?|feel like|look like|dose|"
                      r"doses|dosage|how much|how many|maximum|max|limit|threshold|safe|dangerous|toxic|lethal|normal|common|"
                      r"usually|typical\w*|definition|overdos\w*|poison\w*|hazards?)\b|\b(signs|symptoms) of\b|^\W*(what('s| is| are)|define|"
                      r"explain)\b", re.S)
_KNOW_ZH = re.compile(r"什么是|是什么|有哪些|哪些|什么症状|症状(是|有)|的症状|征兆|先兆|的表现|有什么表现|预防|(怎么|怎样|如何)判断|怎么识别|"
                      r"如何识别|怎么区分|区别|原因|科普|常识|时怎么办|的时候怎么办|时该怎么办|时应该|时如何|急救方法|注意什么|注意事项|危害|"
                      r"会怎样|剂量|用量|吃多少|多少毫克|能吃吗|可以吃吗|正常吗|护理|防止|避免|想学|学一下|培训|怎么用|如何使用|"
                      r"多深|多快|是多少|要不要做|什么感觉|为什么(一定|要)|靠谱吗|说法对吗|是真的吗")
_ASKER = re.compile(r"\b(how (do|can|would|should) i|what (should|do|can) i|should i|can i|do i|i (want|would like|'d like) to know|"
                    r"i was wondering|i wonder|can you tell me|could you tell me|i read|i heard|i'?m curious|i am curious|i'?m "
                    r"(a |an )?(nurse|student|doctor|medic)\w*|i am (a |an )?(nurse|student|doctor|medic)\w*)\b|我想(提前)?(知道|问问?|了解|请教)|请问|"
                    r"我(听说|看到|读到)|想问一?下|我们(村里|这里|老家|那边)?(都)?说|听说|据说")
_REPORT = re.compile(r"\b(i|i'm|im|i've|i'd|me|my|mine|we|we're|our|us|he|she|he's|she's|his|him|her|they're|their|this|right "
                     r"now|currently|help)\b|我|咱|(?<!其)(?<!雷)他(?![汀定])|她|爸|妈|爷|奶|外公|外婆|姥|老公|老婆|丈夫|妻子|孩子|儿子|女儿|宝宝|宝贝|朋友|同事|"
                     r"室友|邻居|家人|现在|正在|刚才|刚刚|此刻")
_RESOLVED = re.compile(r"\b(went away|gone away|has gone|have gone|had gone|resolved|subsided|settled|(is|am|feel|feels|felt|was|"
                       r"were|seems?) (fine|ok|okay|better|normal|back to normal)( now)?|back to normal|no longer|(weeks|months|"
                       r"years) ago|last (month|year)|as a (child|kid|teen\w*)|when i was (a |younger|little|young)|used to|"
                       r"history of)\b|已经(好了|消失|缓解|没事|停了|止住|过去了|恢复)|(现在|目前)(已经)?(完全|基本)?(好了|没事了?|正常了|缓解了|"
                       r"恢复了)|早就好了|好多了|消失了|缓解了|止住了|(几|两|三|四|五|\d+)年前|前年|上个月|去年|小时候|病史|既往|"
                       r"(现在|目前)?[^，。！？,]{0,6}(玩得(很|挺)?好|有说有笑|活蹦乱跳|缓过来了|又去(玩|耍)了)|"
                       r"(现在|目前|如今)[^，。！？,]{0,4}(恢复得(很|挺|还|不错)?(好|不错)|好好的|一切正常|都正常|很正常|挺正常|特别健康|很健康|"
                       r"没(什么|啥)(事|问题|毛病))")
_PRESENT = re.compile(r"\b(right now|now|still|again|currently|at the moment|ongoing|getting worse|worse|keeps?|won'?t stop|"
                      r"came back|coming back)\b|现在(?!想(做|去|问|了解|知道|请教|咨询)|打算|准备|考虑)|正在|还在|仍然|依然|一直|越来越|此刻|又|反复|刚刚|刚才|突然")


def _clause_before(text: str, pos: int) -> str:
    head = text[max(0, pos - 200):pos]
    cut = max((m.end() for m in _BREAK.finditer(head)), default=0)
    return head[cut:]


def _negated(clause: str) -> bool:
    words = re.findall(r"[a-z']+", clause)[-3:]  # English: a negator among the last three words
    return any(negates(w) for w in words) or bool(_NEG_ZH.search(clause.strip()))


def _find(pattern: re.Pattern, text: str, hypothetical_ok: bool = False) -> str | None:
    """First match that is neither negated nor (unless `hypothetical_ok`) inside a hypothetical clause."""
    for m in pattern.finditer(text):
        clause = _clause_before(text, m.start())
        asks_whether = m.group(0).startswith("没") and clause.endswith("有")  # "他有没有呼吸": whether, not a report
        if not asks_whether and not _negated(clause) and (hypothetical_ok or not _HYPO.search(clause)):
            return m.group(0).strip()
    return None


def _fires(r: Rule, text: str, hypothetical_ok: bool = False) -> str | None:
    hits = [] if r.unless and r.unless.search(text) else [_find(pattern, text, hypothetical_ok) for pattern in r.all_of]
    return " + ".join(hits) if hits and all(hits) else None


def _is_knowledge_question(text: str) -> bool:
    return bool(_KNOW_EN.search(text) or _KNOW_ZH.search(text)) and not _REPORT.search(_ASKER.sub(" ", text))


def _is_resolved(text: str) -> bool:
    return bool(_RESOLVED.search(text)) and not _PRESENT.search(_RESOLVED.sub(" ", text))


# ---- infant fever: needs numbers (age < 3 months, temperature >= 38 C / 100.4 F) --------------
_NUM_EN = {w: i for i, w in enumerate("one two three four five six seven eight nine ten eleven twelve".split(), 1)} | {"a": 1, "an": 1}
_MAX_AGE = {"day": 91, "天": 91, "week": 13, "wk": 13, "周": 13, "星期": 13, "礼拜": 13}  # otherwise months: < 3
_N_EN = r"(?P<n>\d{1,3}|" + "|".join(_NUM_EN) + ")"
_AGE_EN = re.compile(rf"\b{_N_EN}[\s-]*(?P<u>day|week|wk|month|mo)s?[\s-]*(old|baby|infant|newborn)\b|\b(is|turned|only|just|aged) "
                     rf"{_N_EN.replace('<n>', '<n2>')} (?P<u2>day|week|month)s?\b(?! (ago|pregnant))", re.ASCII)
_YOUNG_EN = re.compile(r"\b(newborn|neonat\w*|(under|younger than|less than) (3|three) months)\b", re.ASCII)
_AGE_ZH = re.compile(r"(?P<n>\d{1,3}|[一二两三四五六七八九十]+)\s*(?P<u>天|周|个?星期|个?礼拜|个?[多半]?月)(?=大|龄|的(宝宝|婴儿|孩子|小孩|宝贝|儿子|女儿|崽|娃|小娃))|"
                     r"(宝宝|婴儿|孩子|宝贝|儿子|女儿|小孩|崽|娃|外孙女?|孙子|孙女|baby)\s*(出生|生下来)?(才|刚|只有|刚满|满)?(出生|生下来)?"
                     r"(?P<n2>\d{1,3}|[一二两三四五六七八九十]+)\s*来?(?P<u2>天|周|个?星期|个?礼拜|个?[多半]?月)")
_YOUNG_ZH = re.compile(r"新生儿|半个月大|刚出生|(没|未|不)满月|刚满月|(出生|生下来)(才)?(\d{1,2}|[一二两三四五六七八九十]+)来?天")
_FEVER_WORD = re.compile(r"\b(fever\w*|febrile|hot to the touch|burning up|(has|running|with) a (high )?temperature)\b|发烧|发热|高烧|高热|体温(高|升高)")
_TEMP = re.compile(r"(?<![\d.])(\d{2,3}(?:\.\d+)?)(?!\d|\.\d)(?:\s*度\s*(\d)(?!\d))?(?!\s*-?\s*(day|week|wk|month|mo|year|yr|min|hour|"
                   r"hr|lb|pound|kg|oz|ml|mg|%|天|周|个|岁|分钟|小时|斤|公斤|毫|次|下))")
_TEMP_ZH = re.compile(r"([三四])十([一二三四五六七八九])?度([一二三四五六七八九])?")


def _cn_int(s: str) -> int:
    if s.isdigit():
        return int(s)
    d = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"两": 2}
    tens, ten, ones = s.partition("十")
    return d.get(tens, 1) * 10 + d.get(ones, 0) if ten else d.get(s, 99)


def _infant_age(text: str) -> str | None:
    for m in (*_AGE_EN.finditer(text), *_AGE_ZH.finditer(text)):
        n, unit = (m["n"], m["u"]) if m["n"] else (m["n2"], m["u2"])
        if (_NUM_EN[n] if n in _NUM_EN else _cn_int(n)) < _MAX_AGE.get(unit.lstrip("个"), 3):
            return m.group(0)
    young = _YOUNG_EN.search(text) or _YOUNG_ZH.search(text)
    return young.group(0) if young else None


def _temperatures(text: str) -> list[float]:
    """Celsius readings; Fahrenheit values (93-111) are converted, other numbers ignored."""
    temps = [_cn_int(m[1]) * 10 + _cn_int(m[2] or "零") + _cn_int(m[3] or "零") / 10 for m in _TEMP_ZH.finditer(text)]
    for m in _TEMP.finditer(text):
        value = float(m[1] + ("." + m[2] if m[2] else ""))
        temps += [value] if 35 <= value <= 43.5 else [(value - 32) * 5 / 9] if 93 <= value <= 111 else []
    return temps


# ASCII word boundaries: "newborn才3周" and "3 week old宝宝" mix scripts with no space between them
_INFANT = re.compile(r"\b(babies|baby|infant|newborn|neonat\w*|bub|week|weeks|wk|wks|month|months|mo)\b|宝宝|婴儿|新生儿|宝贝|奶娃|月大|周大|个月|满月",
                     re.ASCII)
_OLDER = re.compile(r"\b\d{1,2}\s*(-\s*)?(years?|yrs?|y/?o)\b|\d{1,2}\s*岁|[一二两三四五六七八九十]+岁", re.ASCII)


# Signs of a seriously ill baby or child (the NICE "red" features, in lay words): with one of them, neither
# the age nor a normal reading excuses the model's infant-fever alarm.
_SICK_CHILD = re.compile(
    r"\b(floppy|limp|unresponsive|(won'?t|doesn'?t|does not|will not|not) (wake|wake up|respond\w*|react\w*)|(hard|difficult) "
    r"to (wake|rouse)|grunt\w*|(blue|bluish|grey|gray|purple) (lips|tinge|around)|mottled|(breathing|breathes) (very )?(fast|hard)|"
    r"(fast|rapid) breathing|(dry|no wet) (nappy|nappies|diaper|diapers)|weak cry|high[- ]pitched cry|rash that (doesn'?t|does not|"
    r"won'?t) fade|non[- ]?blanching|bulging (soft spot|fontanel\w*)|seizure|convuls\w*)\b|软绵绵|跟面条似的|叫不醒|不太醒|"
    r"(喊|叫).{0,4}(不睁|不醒)|眼都不睁|没反应|哼哼|发紫|发青|乌青|发绀|皮肤发花|花斑|(喘气|呼吸)[^不没无，,。]{0,3}(快|急促)|"
    r"尿布[^不没无，,。]{0,6}干|没(有)?尿|哭声[^不没无，,。]{0,4}(弱|小猫)|抽搐|抽筋|囟门[^不没无，,。]{0,2}(鼓|凸)")  # no negator inside


def infant_fever_ruled_out(text: str) -> bool:
    """What excludes infant fever: no baby mentioned, a stated age of 3 months or more, or a measured
    temperature in the normal range (36 to under 38 C; a cold young baby is as worrying as a hot one). The
    model does not read numbers this way, so its infant-fever alarms defer to this, unless a sign of a
    seriously ill child is named. (The model often names infant fever for a plain adult fever; with no baby
    named, its alarm would be a false one.)"""
    if _find(_SICK_CHILD, text):
        return False
    temps, young = _temperatures(text), _infant_age(text)
    if (temps and 36.0 <= min(temps) and max(temps) < 37.95) or not (young or _INFANT.search(text)):
        return True
    if young:
        return False
    return bool(_AGE_EN.search(text) or _AGE_ZH.search(text) or _OLDER.search(text))


def _infant_fever(text: str) -> str | None:
    age, temps = _infant_age(text), _temperatures(text)
    if age and temps:  # a measured value decides: 37.9 is not a fever, 38.0 (100.4 F) is
        return f"{age} + {max(temps):.1f} C" if max(temps) >= 37.95 else None
    fever = age and _find(_FEVER_WORD, text)
    return f"{age} + {fever}" if fever else None


def match_rules(norm: str) -> tuple[str, str] | None:
    """(category, evidence) of the first category whose rules fire on normalised text, else None."""
    if not norm.strip():
        return None
    knowledge, resolved = _is_knowledge_question(norm), _is_resolved(norm)
    for category, rules in RULES.items():
        if (knowledge or resolved) and category != "self_harm":
            continue
        # "if I wanted to end my life..." is asked by people at risk: self-harm skips the hypothetical filter
        hits = [_infant_fever(norm)] if category == "infant_fever" else (
            _fires(r, norm, hypothetical_ok=category == "self_harm") for r in rules)
        matched = next((h for h in hits if h), None)
        if matched:
            return category, matched
    return None

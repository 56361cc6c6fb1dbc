"""Text forms the triage layers share: simplified, lower-cased text and the message's language."""

from __future__ import annotations

import re

_T2S_PAIRS = ("頭头臉脸說说話话無无麼么們们體体臟脏壓压劑剂過过藥药嚨咙頸颈腫肿癇痫發发燒烧嬰婴兒儿殺杀醫医識识讓让氣气傷伤結结輕轻點点寶宝"
              "熱热嚴严動动嘔呕噴喷嗎吗為为會会應应該该請请問问題题這这還还沒没狀状徵征預预風风開开門门間间陣阵連连續续鐘钟後后覺觉"
              "個个時时痙痉攣挛側侧邊边隻只腳脚樓楼農农蟲虫誤误嚥咽電电斷断難难紅红暈晕脈脉聲声處处齒齿塗涂從从來来劇剧膚肤變变絕绝"
              "殘残盡尽樣样對对幾几歲岁週周滿满顆颗驚惊燙烫現现剛刚爺爷媽妈腦脑療疗絞绞悶闷緊紧噁恶虛虚溫温測测額额創创湧涌滲渗頜颌"
              "敵敌膠胶鎮镇靜静潔洁鈕钮槍枪縊缢脫脱離离親亲閉闭僅仅錶表癒愈嗆呛紺绀")
_T2S = str.maketrans(dict(zip(_T2S_PAIRS[0::2], _T2S_PAIRS[1::2])))
CJK = re.compile(r"[\u3400-\u9fff]")

# Negators, shared by the rules' negation check and the model's negated-word features.
NEGATORS_EN = frozenset({"no", "not", "never", "without", "denies", "deny", "none", "nor", "neither"})
NEGATORS_ZH = "没有|没|无|未|不|否认|并非"


def negates(word: str) -> bool:
    """An English negator word ("no", "never", "don't")."""
    return word in NEGATORS_EN or word.endswith("n't")


def detect_language(text: str) -> str:
    """"zh" when Chinese characters are at least as many as Latin words (mixed messages are common)."""
    return "zh" if len(CJK.findall(text or "")) >= max(1, len(re.findall(r"[A-Za-z]+", text or ""))) else "en"


def normalize(text: str) -> str:
    """Simplified Chinese, lower case, straight apostrophes: the form every rule is written for."""
    return re.sub(r"[ \t]+", " ", text.translate(_T2S).lower().replace("\u2019", "'").replace("\u2018", "'"))


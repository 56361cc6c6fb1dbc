"""What to show when triage fires: per-category first steps (our own words), in the message's language,
with the emergency and crisis numbers of the user's configured region.

Region codes are set in config.toml (`[safety] region = "UK"`); "auto" names the common numbers.
Crisis lines are listed only where the number is long-established and nationwide.
"""

from __future__ import annotations

from dataclasses import dataclass

from medchat.core.errors import UserError


@dataclass(frozen=True)
class Region:
    emergency: str  # the number to call
    crisis_en: str = ""  # a crisis line for self-harm, if the region has a national one
    crisis_zh: str = ""


REGIONS: dict[str, Region] = {
    "auto": Region("911, 112 or 999 (120 in mainland China)"),
    "US": Region("911", "call or text 988 (Suicide & Crisis Lifeline)", "拨打或发短信 988（美国自杀与危机生命线）"),
    "CA": Region("911", "call or text 988 (Suicide Crisis Helpline)", "拨打或发短信 988（加拿大自杀危机热线）"),
    "UK": Region("999", "call Samaritans on 116 123 (free, 24 hours)", "拨打 Samaritans 热线 116 123（免费，24 小时）"),
    "IE": Region("112 or 999", "call Samaritans on 116 123 (free, 24 hours)", "拨打 Samaritans 热线 116 123（免费，24 小时）"),
    "EU": Region("112"),
    "AU": Region("000", "call Lifeline on 13 11 14", "拨打 Lifeline 13 11 14"),
    "NZ": Region("111", "call or text 1737", "拨打或发短信 1737"),
    "IN": Region("112"),
    "CN": Region("120"),
    "HK": Region("999"),
    "TW": Region("119", "call 1925 (24-hour support line)", "拨打 1925 安心专线（24 小时）"),
    "SG": Region("995"),
    "JP": Region("119"),
}


def region(code: str | None, emergency_number: str | None = None) -> Region:
    """The region for a config value; an explicit emergency number overrides the table's."""
    key = (code or "auto").strip()
    key = "auto" if key.lower() == "auto" else key.upper()
    if key not in REGIONS:
        raise UserError(f"unknown region '{code}'; set [safety] region in config.toml to one of: {', '.join(REGIONS)}")
    found = REGIONS[key]
    if emergency_number:
        found = Region(emergency_number.strip(), found.crisis_en, found.crisis_zh)
    return found


# category -> (English first steps, Chinese first steps)
STEPS: dict[str, tuple[str, str]] = {
    "cardiac": ("Stop all activity, sit or lie down, and unlock the door. Do not drive yourself; if the dispatcher advises it "
                "and you are not allergic, chew one regular aspirin.",
                "立即停止活动，坐下或躺下休息，打开门锁，不要自己开车去医院；如急救人员建议且本人不过敏，可嚼服一片阿司匹林。"),
    "stroke": ("Note the time the symptoms started: treatment depends on it. Give nothing to eat or drink; if drowsy, lay the "
               "person on their side.", "记下症状开始的时间，治疗取决于它。不要给任何食物、水或药物；如果昏昏欲睡，让其侧卧。"),
    "anaphylaxis": ("If an adrenaline (epinephrine) auto-injector is available, use it now in the outer thigh. Lie flat with legs "
                    "raised, or sit up if breathing is hard; a second dose can be given after 5 minutes if there is no improvement.",
                    "如有肾上腺素自动注射笔，立即在大腿外侧注射。平躺抬高双腿，呼吸困难时可坐起；5 分钟后无好转可再注射一次。"),
    "breathing": ("Sit upright and stay as calm and still as you can; loosen tight clothing and use a prescribed reliever inhaler "
                  "if there is one.", "保持坐直，尽量保持安静，解开紧身衣物；如有医生开的缓解吸入剂，按医嘱使用。"),
    "choking": ("If the person cannot cough, speak or breathe, give up to 5 firm back blows between the shoulder blades, then up "
                "to 5 abdominal thrusts (chest thrusts for a baby), and repeat. Start CPR if they become unresponsive.",
                "如果患者无法咳嗽、说话或呼吸，在两肩胛骨之间用力拍背最多 5 次，再做最多 5 次腹部冲击（婴儿改为胸部按压），交替重复。"
                "如失去反应，立即开始心肺复苏。"),
    "unconscious": ("Check for normal breathing. If the person is not breathing normally, start chest compressions (hard and fast "
                    "in the centre of the chest) and follow the dispatcher; if they are breathing, roll them onto their side.",
                    "检查是否有正常呼吸。如果没有正常呼吸，立即开始胸外按压（在胸部正中用力快速按压），并听从急救调度员指导；如有呼吸，让其侧卧。"),
    "sepsis": ("An infection with confusion, very fast breathing, mottled or bluish skin, or little or no urine can be sepsis, "
               "which needs treatment within the hour. Say \"could this be sepsis?\" when you get help.",
               "感染伴意识模糊、呼吸很快、皮肤发花或发青、尿很少或无尿，可能是脓毒症，需要在一小时内治疗。就医时直接问“会不会是脓毒症？”"),
    "meningitis": ("Fever with a stiff neck, a rash that does not fade under pressure, or confusion can mean meningitis or sepsis, "
                   "which worsen within hours. Do not wait for more symptoms.",
                   "发热伴颈部僵硬、按压不褪色的皮疹或意识模糊，可能是脑膜炎或败血症，几小时内就会加重。不要等待更多症状出现。"),
    "infant_fever": ("A temperature of 38 °C (100.4 °F) or more in a baby under 3 months needs a doctor urgently, today. Keep "
                     "feeding and dress the baby lightly; do not give fever medicine unless a clinician tells you to.",
                     "3 个月以下的婴儿体温达到 38°C 或以上，需要立即就医。继续喂奶，穿着宽松；除非医生指示，不要自行服用退烧药。"),
    "seizure": ("Move hard objects away, cushion the head, and do not hold the person down or put anything in their mouth. "
                "Time the seizure; when the jerking stops, roll them onto their side.",
                "移开周围的硬物，垫住头部，不要按住患者，也不要往嘴里塞任何东西。记录抽搐时间；抽搐停止后让其侧卧。"),
    "poisoning": ("Do not make the person vomit and give nothing by mouth unless told to. Keep the container or pill packet for "
                  "the responders; you can also call your local poison control centre. For carbon monoxide, get everyone "
                  "into fresh air first.",
                  "不要催吐，除非医护人员指示，不要让其吃喝任何东西。保留药瓶或包装给急救人员看；也可以联系当地中毒急救咨询机构。"
                  "如怀疑一氧化碳中毒，先让所有人到室外通风处。"),
    "bleeding": ("Press hard on the wound with a clean cloth and keep pressing without lifting to look; if blood soaks through, "
                 "add more cloth on top. Raise the injured part if you can.",
                 "用干净的布用力按压伤口，持续按压，不要掀开查看；血渗透时在上面再加布。尽量抬高受伤部位。"),
    "gi_bleeding": ("Vomiting blood, black tarry stools or heavy bleeding from the back passage can mean bleeding inside the gut. "
                    "Lie down if you feel faint, eat and drink nothing, and keep a sample or note what you saw.",
                    "呕血、柏油样黑便或肛门大量出血，可能是消化道出血。感到头晕时平躺，不要进食饮水，记下或保留所见情况。"),
    "head_injury": ("After a head injury, vomiting, drowsiness, confusion, a fit or clear fluid from the nose or ears need "
                    "emergency care. Keep the person still and do not leave them alone.",
                    "头部受伤后出现呕吐、嗜睡、意识混乱、抽搐或鼻耳流出清液，需要紧急救治。让伤者保持不动，不要让其独处。"),
    "spinal_injury": ("Do not move the person unless they are in danger; keep the head and neck still in the position found "
                      "until help arrives.", "除非有危险，不要搬动伤者；保持头颈部在原来的位置不动，直到救援到达。"),
    "acute_abdomen": ("Sudden severe belly pain, a hard rigid belly, or pain with repeated vomiting needs urgent assessment. Do not "
                      "eat or drink and do not take painkillers that may hide the signs before you are seen.",
                      "突发剧烈腹痛、腹部发硬，或腹痛伴反复呕吐，需要紧急评估。就诊前不要进食饮水，也不要自行服止痛药掩盖症状。"),
    "pregnancy": ("In pregnancy, heavy bleeding, severe one-sided pain, fainting, a severe headache with vision changes, or a "
                  "baby that has stopped moving need emergency care. Lie on your left side while you wait.",
                  "孕期出现大量出血、一侧剧烈腹痛、晕厥、剧烈头痛伴视物模糊，或胎动停止，需要紧急救治。等待时向左侧卧。"),
    "hypoglycaemia": ("If the person is awake and can swallow, give fast sugar now (juice, sugary drink or glucose tablets) and "
                      "recheck in 15 minutes. If they are drowsy or cannot swallow, give nothing by mouth.",
                      "如果患者清醒且能吞咽，立即给予快速糖（果汁、含糖饮料或葡萄糖片），15 分钟后复测。如昏昏欲睡或无法吞咽，不要喂任何东西。"),
    "dka": ("Very high blood sugar with vomiting, belly pain, deep fast breathing or fruity breath can be diabetic ketoacidosis. "
            "Sip water if you can, keep taking insulin, and bring your meter.",
            "血糖很高并伴呕吐、腹痛、呼吸深快或呼气有烂苹果味，可能是糖尿病酮症酸中毒。能喝就小口喝水，不要停用胰岛素，带上血糖仪。"),
    "burns": ("Cool the burn under cool running water for 20 minutes, remove rings and clothing near it unless stuck, and "
              "cover loosely with cling film or a clean non-fluffy cloth. No ice, butter or creams. For a chemical in the eye, "
              "rinse with running water for at least 20 minutes.",
              "用流动的凉水冲洗烧烫伤处 20 分钟，取下附近的戒指和衣物（粘连的不要撕），用保鲜膜或干净不掉毛的布松松覆盖。"
              "不要用冰、黄油或药膏。化学品溅入眼睛时，用流动清水冲洗至少 20 分钟。"),
    "arrhythmia": ("A very fast or very slow pulse with fainting, chest pain or breathlessness needs emergency care. Sit or lie "
                   "down and do not drive.", "心跳很快或很慢并伴晕厥、胸痛或呼吸困难，需要紧急救治。坐下或躺下，不要开车。"),
    "vision_loss": ("Sudden loss of sight, a curtain over the vision, or a painful red eye with haloes and vomiting needs "
                    "emergency eye care today. Do not wait to see if it clears.",
                    "突然视力丧失、眼前像拉下一道帘子，或眼睛红痛伴看灯有光晕、呕吐，需要当天紧急眼科处理。不要等待自行恢复。"),
    "testicular_torsion": ("Sudden severe pain in a testicle can be torsion; surgery within about six hours can save it. Go to "
                           "an emergency department now and do not eat or drink.",
                           "睾丸突然剧痛可能是睾丸扭转，约六小时内手术才能保住睾丸。立即去急诊，不要进食饮水。"),
    "heat_stroke": ("Move the person somewhere cool, remove extra clothing, and cool them fast with cold water, wet cloths and "
                    "fanning. Give sips of water only if they are fully awake.",
                    "把患者移到阴凉处，脱去多余衣物，用冷水、湿毛巾和扇风迅速降温。只有在完全清醒时才小口喂水。"),
    "hypothermia": ("Move the person somewhere warm and dry, remove wet clothes, and warm them gradually with blankets, covering "
                    "the head. Handle them gently; no hot baths or alcohol.",
                    "把患者移到温暖干燥的地方，脱去湿衣服，用毯子逐渐复温并盖住头部。动作要轻；不要泡热水澡，不要喝酒。"),
    "dehydration": ("Give small, frequent sips of an oral rehydration solution. A child with no wet nappy for 12 hours, sunken "
                    "eyes, or who is floppy or hard to wake needs to be seen now.",
                    "少量多次地喂口服补液盐。孩子 12 小时没有尿湿尿布、眼窝凹陷、精神萎靡或难以唤醒，需要立即就医。"),
    "danger_to_others": ("If anyone is in immediate danger, get yourself and others to a safe place first, then call. Do not try "
                         "to take a weapon away yourself.",
                         "如果有人处于直接危险中，先让自己和他人到安全的地方，再打电话求助。不要自己尝试夺下武器。"),
    # an emergency that fits none of the above (sudden confusion, snakebite, a limb swelling tight under a cast)
    "general": ("Do not wait to see if it settles and do not drive yourself. Keep the person still and with someone, and "
                "have their medicines and any recent test results ready for the crew.",
                "不要等着看会不会自己好转，也不要自己开车去医院。让患者保持不动、身边有人陪着，并备好正在用的药物和近期检查结果。"),
}
CATEGORIES: tuple[str, ...] = ("self_harm", *STEPS)

_SELF_HARM_EN = ("You do not have to face this alone. If you might act on these thoughts, or have already hurt yourself or "
                 "taken something, call {emergency} now.{crisis} If you can, stay with someone you trust and move away from "
                 "anything you could use to hurt yourself.")
_SELF_HARM_ZH = ("你不必独自面对这些。如果你可能会伤害自己，或者已经伤害了自己、吃下了什么，请立即拨打 {emergency}。{crisis}"
                 "尽量待在信任的人身边，远离可能用来伤害自己的东西。")


def guidance(category: str, language: str, where: Region | None = None) -> str:
    """The guidance line for a category in "en" or "zh", with the region's numbers."""
    where = where or REGIONS["auto"]
    zh = language == "zh"
    if category == "self_harm":  # its own wording: crisis lines as well as the emergency number
        if zh:
            crisis = f"想马上找人聊一聊，可以{where.crisis_zh}，或拨打当地的心理援助热线。" if where.crisis_zh else \
                "想马上找人聊一聊，可以拨打当地的心理援助热线。"
            return _SELF_HARM_ZH.format(emergency=where.emergency, crisis=crisis)
        crisis = f" To talk to someone right away, {where.crisis_en}." if where.crisis_en else \
            " To talk to someone right away, call your local crisis line."
        return _SELF_HARM_EN.format(emergency=where.emergency, crisis=crisis)
    en, zh_steps = STEPS[category]
    if zh:
        return f"这可能是急症。请立即拨打急救电话 {where.emergency}。{zh_steps}"
    return f"This may be an emergency. Call {where.emergency} now. {en}"


def disclaimer(language: str = "en", where: Region | None = None) -> str:
    where = where or REGIONS["auto"]
    if language == "zh":
        return f"medchat 不能替代医生。遇到紧急情况，请立即拨打急救电话 {where.emergency}。"
    return f"medchat is not a substitute for a clinician. In an emergency, call {where.emergency} now."

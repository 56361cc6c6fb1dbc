"""Red-flag rule tables (English and Chinese): per category, rules that fire when all their patterns match.

A rule fires when each of its patterns matches somewhere outside a negation ("no chest pain", "没有胸痛")
and outside a hypothetical clause ("what should I do if", "如果"); `rules.py` does the matching. These
tables are the high-precision layer beside the learned model: a pattern earns its place only if it
does not raise false alarms on the ordinary messages of the train and dev splits.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Rule(NamedTuple):
    all_of: tuple[re.Pattern, ...]
    unless: re.Pattern | None = None  # message-level exclusion ("period" for heavy bleeding)


def rule(*patterns: str, unless: str | None = None) -> Rule:
    return Rule(tuple(re.compile(p) for p in patterns), re.compile(unless) if unless else None)


# ---- shared symptom groups ------------------------------------------------------------------
BREATH_EN = (r"\bshort(ness)? of breath|\b(can'?t|cannot|unable to|hard to|struggl\w* to|trouble|difficult\w*|"
             r"problems?) (catch (my |his |her )?breath|breath\w*)|\bbreathless|\bout of breath|\bgasping|\bwheez\w*")
BREATH_ZH = r"呼吸困难|喘不(上|过|来)气?|上不来气|透不过气|气短|气急|憋气|呼吸急促|气喘"
FEVER_EN = r"\b(fever\w*|febrile|high temperature|temp(erature)? of|burning up|\d{2,3}(\.\d)?\s*(°|degrees|c\b|f\b))"
FEVER_ZH = r"发烧|发热|高烧|高热|烧到|体温(高|升高|\d)|\d{2}(\.\d)?\s*(度|℃)"
DRUG_EN = (r"(pills?|tablets?|capsules?|meds|medicines?|medications?|tylenol|paracetamol|acetaminophen|ibuprofen|"
           r"aspirin|insulin|antidepressants?|opioids?|oxy\w*|fentanyl|heroin|gummies|vitamins?|iron)")
DRUG_ZH = r"(药|安眠药|止痛药|退烧药|降压药|降糖药|胰岛素|抗抑郁药|扑热息痛|对乙酰氨基酚|布洛芬|阿司匹林|维生素|铁剂|胶囊)"
CHEM_EN = (r"(bleach|detergent|laundry (pod|capsule)s?|dishwasher (pod|tablet)s?|drain cleaner|oven cleaner|antifreeze|"
           r"pesticide|insecticide|weed ?killer|rat poison|poison|batter(y|ies)|lye|kerosene|gasoline|petrol|lamp oil|"
           r"lighter fluid|methanol|(window|toilet) cleaner|cleaning (product|fluid|liquid|spray)|nail polish remover|"
           r"e-?liquid|vape (juice|liquid)|wild mushrooms?|mushrooms? (from|in) the (yard|garden|woods|park)|magnets)")
CHEM_ZH = (r"(漂白剂|漂白水|84消毒液|84消毒水|84液|消毒液|消毒水|洗衣液|洗衣凝珠|洗洁精|清洁剂|洁厕灵|洁厕剂|管道疏通剂|通渠剂|农药|敌敌畏|"
           r"百草枯|老鼠药|鼠药|杀虫剂|杀虫水|防冻液|甲醇|工业酒精|医用酒精|毒蘑菇|野蘑菇|野生蘑菇|纽扣电池|电池|磁铁|汽油|煤油)")
CHEST_EN = (r"\bchest\b[^.;,]{0,12}\b(pain|pressure|tight\w*|discomfort|heav\w*|hurts?|hurting|ache|aching|squeez\w*|crush\w*)"
            r"|\b(pain|pressure|tightness|heaviness|squeezing|crushing|ache)\b[^.;,]{0,10}\b(in|on|across|around)\b[^.;,]{0,20}\bchest\b"
            r"|\b(sitting|pressing|weight|something heavy)\b[^.;,]{0,10}\bon (my|his|her|the) chest|\bclutch\w* (my|his|her|their) chest")
CHEST_ZH = r"胸(口|部|前|腔)?(像|好像)?(被)?(很|非常|特别|好|剧烈)?(剧痛|痛|疼|闷|憋|压|发紧|紧|绞痛)|心口(痛|疼|闷)|心前区(痛|疼)"
SEIZ_EN = r"\b(seizures?|convulsions?|convulsing|seizing|(a|another) fit(?! to (fly|travel|work))|fitting)\b"
SEIZ_ZH = r"(抽搐|抽风|惊厥|癫痫发作|羊角风|羊癫疯)"
TRIGGER_EN = (r"\b(ate|eating|eaten|after (eating|taking)|peanuts?|nuts?|shellfish|shrimps?|prawns?|sesame|stung|sting|bee|"
              r"wasp|hornet|penicillin|amoxicillin|antibiotics?|injection|vaccine|allergic reaction|new (medicine|medication|drug))\b")
TRIGGER_ZH = r"花生|坚果|海鲜|虾|蟹|芒果|被.{0,3}(蜇|蛰|叮|咬)|蜜蜂|马蜂|黄蜂|过敏|打针|打完针|输液|青霉素|头孢|阿莫西林|疫苗|(吃|服)药后"
SWELL_EN = (r"\b(throat|lips?|face|mouth|eyes?)\b[^.;,]{0,20}\b(swell\w*|swollen|puff\w*)|\bswell\w*\b[^.;,]{0,12}\b(throat|lips?|"
            r"face|mouth)\b|\bthroat\b[^.;,]{0,12}\btight\w*")
SWELL_ZH = r"(嘴唇|嘴|脸|面部|眼皮|喉咙|嗓子|喉头)(突然)?(都)?(发?肿|肿胀|水肿|肿起来|肿了)|(喉咙|嗓子|喉头)发紧"

# ---- rule tables, checked in this order (the first category that fires wins) ------------------
RULES: dict[str, list[Rule]] = {
    "self_harm": [
        rule(r"\b(kill\w*|hang\w*|starv\w*|shoot\w*) (my|him|her|them)sel(f|ves)\b|\bsuicid\w*|\bend(ing)? (it all|my life|his life|"
             r"her life)\b|\btake (my|his|her) (own )?life|\bwants? to die\b|\bwanted to die|\bwish (i|he|she) (was|were) dead|\bbetter "
             r"off (dead|without me)|\bno (reason|point) (to live|in living)|\bdon'?t want to (live|be alive|wake up|exist)"),
        rule(r"\b(hurt\w*|harm\w*|cut\w*|burn\w*) (my|him|her)sel(f)\b|\bself[- ]?harm\w*",
             r"\b(on purpose|deliberately|intentionally|want\w* to|urges?|again|keeps?|been|thinking|feel like|going to)\b"),
        rule(r"(?<!预防)(?<!防止)(?<!非)自杀(?!预防|干预|率)|轻生|寻死|自尽|(?<!得)(想|打算|准备|计划|想要)(去)?(死(?!你|您)|结束(自己的?)?生命|了结自己|离开这个世界)|不想活|"
             r"活不下去|活着(真)?没(有)?(意思|意义)|割腕|自残|跳楼|死了算了|一了百了|不如死了"),
        rule(r"(伤害|割|划|烫)自己", r"想|故意|忍不住|又|一直|经常|控制不住"),
        # slang and methods told with a plan: the words carry no "suicide", the plan does
        rule(r"\bkms\b|\bunalive (my|him|her)sel(f)|\bunaliv\w* (myself|me)\b|\bgoodbye (note|letter|message|msg|text)s?\b|"
             r"\b(walk|jump|step|throw (my|him|her)self)\b[^.;,]{0,12}\b(in front of|onto|under) (the |a )?(train|tracks|traffic|bus|"
             r"lorry|truck)|\b(you'?ll|you will|everyone'?ll|everyone will|they'?ll|you'?d|you would) (all )?be better off\b|"
             r"\bmade my peace\b|\b(no ?one|nobody)( here)? (will|would|is going to|gonna) miss me\b|\b(sleep|go to sleep|close my "
             r"eyes) and never (wake|come back|open)|\b(rope|noose)\b[^.;]{0,30}\b(ready|tied|set up|hung|up)\b|\b(blade|razor)\b[^.;]{0,40}\b(wrists?|"
             r"properly|this time|deep)\b|\b(blade|razor)\b.{0,30}\b(doing it|do it|this time)\b|\b(hose|pipe|tube)\b[^.;]{0,40}\b(exhaust|garage)\b"),
        rule(r"\b(gun|pistol|rifle)('s| is)? loaded|\bplan('s| is)? (sorted|ready|made|set)|\b(knife|blade|pills?|rope) "
             r"(is |are )?ready\b", r"\b(had enough|done|i'?m done|over|miss me|goodbye|bye|end it|can'?t (go on|do this))\b"),
        rule(r"(想|打算|准备|计划|决定).{0,10}(结束(自己的?)?生命|了结自己)|(炭|木炭)(都|已经)?(买好|准备好)|(药|药片)(都|已经)?"
             r"(倒|拿|攒)(出来|好)了?.{0,4}(准备|要|想)(吃|吞)"),
        # a plan told through a place, a method or a goodbye, with no word for suicide in it
        rule(r"(楼顶|天台|顶楼|楼上|阳台|窗户?|桥上?|栏杆|站台|江边|河边|[0-9一二三四五六七八九十]+楼).{0,12}(?<!心)跳(?!绳|舞|动|高|远|伞|槽|蚤|水|操|一下|起来)"
             r"|跳(窗|河|江|海|桥|楼)(?!梯)|上吊|打(好|了)?(了)?结的绳|遗书|告别(信|小作文)|不想(再)?(醒|醒过来|醒来)|睡过去(不|再也不)(再)?醒|"
             r"(想|要)(直接|干脆|赶紧|就这样|快点)?(去)?死掉|(叫|让)我去死|死给.{0,2}看|(了断|结束掉?)自己|自我了断|把自己(结束|了断)|"
             r"(故意|有意|目的是).{0,12}((吃|吞|服|喝)|(割|划)(了|伤)?(自己|手|胳膊)|打.{0,4}胰岛素)|(别|不要|不用|不想被)(救|捞)我|"
             r"(拖累|累赘).{0,20}(今晚|最后|走了|不在|了断|准备好)|(木炭|炭).{0,10}胶带|胶带.{0,10}(木炭|炭)|(买|备)好了?.{0,6}(木炭|炭)|"
             r"打算.{0,12}烧炭|(窗|门).{0,8}(关|关严|关死|封).{0,15}(煤气|燃气).{0,4}(开|打开)|(煤气|燃气).{0,4}(开|打开)了?.{0,15}(窗|门)"
             r".{0,6}(关|关严|关死|封)"),
        rule(r"紫砂|(?<!得)想死|(绳子|绳)(都|已经)?(挂|系|绑|准备)好|排气管.{0,10}(管子|接)|(遗书|告别信)|(找好|选好|看好|查好|找了个?|选了个?)了?.{0,8}(楼|桥|地方|"
             r"方法)|(农药|安眠药|刀片).{0,12}(准备好|差不多了|今天|今晚|动手)|(这次|今晚|明天|周末).{0,10}(动手|结束|解脱|不会[再在]?失败)"),
        # how much would kill: asked by people at risk, so no knowledge filter drops it
        rule(r"(多少|几)(片|颗|粒|瓶|盒|板).{0,6}(会死|能死|致死|死人|不醒|醒不过来|没命)|致死(量|剂量)|怎么死.{0,4}(不痛|不疼|最快|轻松|没痛苦)|"
             r"(吃|吞)(掉)?整(板|瓶|盒).{0,8}(会怎样|会怎么样|会死)"),
    ],
    "unconscious": [
        rule(r"\b(unconscious|unresponsive|not responsive)\b(?! bias| mind)|\b(won'?t|will not|can'?t|cannot|isn'?t|is not|not) "
             r"respond\w*\b(?! to)|\bcollapsed\b(?! lung| vein)|\b(not|isn'?t|stopped|stop) breathing\b(?! (through|out of|properly))"
             r"|\bno pulse|\bdoesn'?t have a pulse|\bcan'?t (find|feel) (a|his|her|the) pulse|\bpassed out and\b[^.;,]{0,20}\b"
             r"(won'?t|not|isn'?t|can'?t)|\bknocked (out|unconscious)|\b(doing|started|giving) cpr"),
        rule(r"\b(won'?t|will not|can'?t|cannot|couldn'?t) (wake|be woken)", unless=r"\b(school|alarm|morning|early|on time|work)\b"),
        rule(r"昏迷|不省人事|失去(了)?意识|(叫|喊|拍|推)(他|她|了)?(也|都)?(没(有)?反应|没动静)|(没有|没)(了)?(呼吸|心跳|脉搏)"
             r"(?!困难|急促|道|科|不畅|声)|停止(了)?(呼吸|心跳)|(呼吸|心跳)(停了|停止了|没了)|倒地(不起|后?没反应)|"
             r"晕倒(了)?.{0,6}(醒不过来|叫不醒|没反应)|摸不到脉搏|(正在|在|开始|已经)(给[^。！？\n]{0,6})?(做|进行)?心肺复苏",
             unless=r"(累|困|忙|熬夜|通宵|加班)[^。！？\n]{0,12}(昏迷|不省人事)"),  # "worked all night, I'm comatose"
        rule(r"叫不醒|醒不过来", unless=r"上学|起床|赖床|闹钟|上班"),
    ],
    "anaphylaxis": [
        rule(r"\bthroat\b[^.;,]{0,25}\b(closing|clos\w* up|swelling shut)|\btongue\b[^.;,]{0,15}\b(swell\w*|swollen)|\bswell\w*\b"
             r"[^.;,]{0,10}\btongue|(喉咙|喉头|嗓子)(像)?(被)?(堵住|卡住|收紧|要闭上|封住)|舌头(发)?(肿|肿胀|肿大|变大)",
             unless=r"\bbit (my|his|her|their) tongue|咬(到|了|破)(了)?舌头"),
        rule(SWELL_EN, TRIGGER_EN), rule(SWELL_EN + r"|\bhives (all over|everywhere)", BREATH_EN), rule(BREATH_EN, TRIGGER_EN),
        rule(SWELL_ZH, TRIGGER_ZH), rule(SWELL_ZH + r"|全身(起|长|出)?(风团|荨麻疹|疹子)", BREATH_ZH), rule(BREATH_ZH, TRIGGER_ZH),
        rule(r"\banaphyla\w*|\bused (my|his|her|the|an) epi-?pen|\bgave (him|her|them) (an |the |his |her )?epi-?pen|过敏性休克|"
             r"严重过敏反应|(用|打|注射)了?肾上腺素"),
    ],
    "cardiac": [
        *(rule(CHEST_EN, other) for other in (
            BREATH_EN, r"\b(sweat\w*|clammy|drenched)",
            r"\b(spread\w*|radiat\w*|goes|going|moving|shoot\w*|travel\w*)\b[^.;]{0,25}\b(arm|jaw|shoulder|neck|back)\b|\b(left arm|jaw) "
            r"(pain|hurts|aches?|is numb|feels? numb)|\b(pain|ache|numbness) in (my |his |her )?(left arm|jaw)",
            r"\b(nause\w*|vomit\w*|throwing up|faint\w*|light-?headed|dizzy)")),
        rule(r"\bcrushing\b[^.;]{0,15}\b(chest|pain)\b|\bhaving (a |another )?heart attack|\bheart attack (right )?now"),
        *(rule(CHEST_ZH, other) for other in (
            BREATH_ZH, r"(出|冒|流|一身)了?(很多|好多|一身)?(冷)?汗|大汗|冷汗",
            r"(放射|传|窜|连|牵扯|延伸)(到)?.{0,4}(左?(手臂|胳膊|臂|肩|肩膀)|下巴|下颌|牙|后背|背|脖子)|(左(手臂|胳膊|臂|肩|肩膀)|下巴|下颌)(也)?(痛|疼|麻|发麻)",
            r"恶心|想吐|呕吐|头晕|眼前发黑|要晕倒|快晕了")),
        rule(r"(心梗|心肌梗[死塞]|心脏病)(又)?(发作|犯了|了)",  # internet slang for a nasty surprise, a price
             unless=r"心梗了?属于是|心梗了[^。！？\n]{0,12}(哈哈|笑死|编剧|告辞)|(贵|价|块钱|元|涨价|账单|奶茶|外卖)[^。！？\n]{0,12}心梗了"),
    ],
    "stroke": [
        rule(r"\b(face|mouth|smile)\b[^.;,]{0,20}\b(droop\w*|sagg\w*|lopsided|uneven|crooked|slid\w* down)|\bdroop\w*\b[^.;,]{0,15}\b(face|mouth|smile)\b"),
        rule(r"\b(weak\w*|numb\w*|paraly\w*|can'?t feel|can'?t move)\b[^.;,]{0,25}\b(one side|left side|right side|half (of )?(my|his|"
             r"her|the) body)\b|\b(one side|left side|right side)\b[^.;,]{0,20}\b(weak\w*|numb\w*|paraly\w*)|\bsudden\w*\b[^.;,]{0,25}"
             r"\b(weak\w*|numb\w*|paraly\w*)|\barm weakness"),
        rule(r"\bslurr\w*|\b(speech|words?|talking)\b[^.;,]{0,15}\b(garbled|jumbled|not making sense|gibberish)|\bsudden\w*\b[^.;,]{0,15}"
             r"\b(can'?t|cannot|couldn'?t|unable to) (speak|talk|get (the |his |her |my )?words out)"),
        rule(r"\bsudden\w*\b[^.;,]{0,20}\b(confus\w*|disorient\w*)|\b(confus\w*|disorient\w*)\b[^.;,]{0,15}\bsudden\w*"),
        rule(r"\bworst headache (of (my|his|her|their) (life|lives)|ever|(i|he|she|they) (have|has|'ve|'s) ever)|\bthunderclap|\bsudden\w*\b[^.;,]{0,12}\b(severe|excruciating|terrible|explosive|blinding|agoni\w*)"
             r"\b[^.;,]{0,6}\bheadache|\bsudden\w*\b[^.;,]{0,20}\b(los[te]\w* (the )?(vision|sight)|can'?t see|double vision)"),
        rule(r"\bhaving (a |another )?stroke|\bjust had a stroke"),
        rule(r"(嘴|嘴巴|嘴角|口角|脸|面部|半边脸|一边脸)(突然)?(有点|有些)?(歪|斜|歪斜|下垂|耷拉|不对称)|口眼歪斜|(半边|一边)脸(发)?麻"),
        rule(r"(一侧|半边|半身|单侧|左侧|右侧|一边|左边|右边)(的)?(身体|身子|手|胳膊|手臂|腿|手脚|肢体)?(突然)?(无力|没力气|没劲|麻木|麻|"
             r"发麻|不能动|动不了|抬不起来?|不听使唤)|偏瘫|突然.{0,2}(一侧|半边|一边|左边|右边|左|右)?(手|胳膊|手臂|腿|脚|半身)(也)?(无力|没力气|"
             r"没劲|发麻|麻木|动不了|抬不起|举不起|不听使唤)|(手|胳膊|手臂|腿|脚)突然(无力|没力气|没劲|发麻|麻木|动不了|抬不起|举不起|不听使唤)"),
        rule(r"说话(突然)?(不清|含糊|含混|不利索|大舌头|费劲)|口齿不清|吐字不清|突然.{0,2}(说不出话|不会说话|讲不出话)"),
        rule(r"突然.{0,4}(糊涂|意识混乱|神志不清|胡言乱语|认不出人|不认人|看不见|失明)"),
        rule(r"突然.{0,6}(剧烈|严重|炸裂|爆炸样?|撕裂样?)的?头(痛|疼)|(这辈子|有生以来|从来没有过|从没有过|从没这么).{0,8}头(痛|疼)"),
        rule(r"(中风|脑梗|脑卒中|卒中|脑出血)(了|发作)|(可能|好像|怀疑|是不是)(是)?(中风|脑梗|卒中)",
             unless=r"气得[^。！？\n]{0,6}(中风|脑梗)"),  # "气得说要中风了": anger, said in jest
    ],
    "meningitis": [
        rule(r"\bstiff neck|\bneck\b[^.;,]{0,15}\b(stiff\w*|rigid)", FEVER_EN,
             r"\b(rash|spots|purple|blotch\w*|confus\w*|drowsy|not making sense|hard to wake|delirious|light hurts|sensitive to (the )?light|"
             r"photophobia|vomit\w*|severe headache|worst headache)"),
        rule(r"\brash\b[^.;]{0,40}\b(doesn'?t|does not|won'?t|didn'?t|not) (fade|disappear|go away|blanch)\b[^.;]{0,25}\b(glass|press\w*)"
             r"|\b(non-?blanching|purpuric|petechia\w*)", FEVER_EN),
        rule(r"\b(think|might|may|could|worried|scared|afraid)\b[^.;]{0,25}\bmeningitis", unless=r"\b(vaccin\w*|jab|shot)\b"),
        rule(r"(脖子|颈部|颈项|后颈|颈)(很|有点|特别|非常)?(发)?(僵|硬|僵硬|强直)|低头困难|低不了头|不能低头", FEVER_ZH,
             r"皮疹|疹子|出疹|红点|紫点|紫斑|瘀点|瘀斑|出血点|意识(模糊|不清)|糊涂|胡言乱语|嗜睡|昏睡|怕光|畏光|喷射(状|性)?(地)?呕吐|剧烈头痛|头痛(得)?(厉害|剧烈)"),
        rule(r"(按压|按|玻璃杯|杯子).{0,8}(不褪色|不褪|不变白|不消退)", FEVER_ZH),
    ],
    "infant_fever": [],  # numeric: see _infant_fever
    "seizure": [
        rule(r"\b(is|are|'s|been|keeps?|still|currently) (having |in )?(a |another )?(seizures?|convulsions?|fits?)\b|\b(seizing|"
             r"convulsing)\b|\bhaving (a |another )?(seizure|convulsion|fit) (right )?now",
             unless=r"\b(epilep\w*|medication|meds|for years|since (childhood|he was|she was))\b"),
        rule(SEIZ_EN, r"\b([5-9]|[1-9]\d|five|six|seven|eight|nine|ten|fifteen|twenty)\s*(minutes?|mins?)|\bwon'?t stop|\bnot stopping|"
             r"\bhasn'?t stopped|\bback[- ]to[- ]back|\bone after another|\bfirst (ever )?(seizure|fit|convulsion)|\bnever had (a )?"
             r"(seizure|fit)|\b(won'?t|not|isn'?t|can'?t) (wake|waking|respond\w*)|\bpregnant|\bin the (water|bath|pool)|\bhit (his|her|my) head"),
        rule(rf"(正在|还在|一直|不停地?|又在|在)(全身|浑身|四肢)?{SEIZ_ZH}|(全身|浑身|四肢)(不停地?)?(抽搐|抽动)|口吐白沫",
             unless=r"嘴角[^。！？\n]{0,3}抽搐"),  # a grimace at a bad joke
        rule(SEIZ_ZH, r"([5-9]|[1-9]\d|五|六|七|八|九|十|十几|好几)\s*分钟|停不下来|不停|不止|止不住|第一次|从来没有|醒不过来|叫不醒|没反应|"
             r"怀孕|孕妇|撞到头|在水里|一次接一次|接连"),
    ],
    "poisoning": [
        rule(rf"\b(took|taken|taking|swallowed|ate|eaten|given|gave)\b[^.;,]{{0,25}}\b(too many|too much|(a|the) (whole|full) (bottle|box|"
             rf"pack\w*|strip|sheet)|most of (a|the|my|his|her) (bottle|box|pack\w*|strip)|the (whole|entire) (bottle|box|pack\w*)|an entire (bottle|box|pack\w*)|all (of )?(my|his|her|"
             rf"their|the)|a handful of|\d{{2,}}\b(?!\s*(mg|mcg|ml|g|grams?|units?|iu|%))|dozens? of)\b[^.;,]{{0,20}}\b{DRUG_EN}"),
        rule(r"\b(overdos\w*|od'?d)\b|\b(been|was|got|is|were) poisoned\b"),
        rule(rf"\b(swallowed|drank|drunk|ate|eaten|ingested|sipped|chewed|licked|got into|drinking|swallowing)\b[^.;,]{{0,30}}\b{CHEM_EN}"),
        rule(r"\b(carbon monoxide|co (alarm|detector))\b",
             r"\b(going off|beeping|sounding|went off|headaches?|dizz\w*|nause\w*|vomit\w*|drowsy|sleepy|confus\w*|passed out|faint\w*)"),
        rule(rf"(吃|吞|服|喝)(?!过(?!量))(了|下)?.{{0,8}}(一整瓶|整瓶|一瓶|一整盒|整盒|一盒|一整板|整板|一板|一把|大量|过量|太多).{{0,6}}{DRUG_ZH}|(吃|吞|服)(?!过(?!量))(了|下)?"
             r".{0,6}(一整瓶|整瓶|一把|几十|十几|[1-9]\d+|[二三四五六七八九]?十[一二三四五六七八九]?|一百|几百)(片|粒|颗)"),
        rule(r"(服药|吃药|用药|药物)过量|过量(服用|服药|吃药|用药)|药吃多了|误服|误食|误喝|(一氧化碳|煤气)中毒(?!过)",
             unless=r"有过.{0,3}(药物|服药|用药)过量"),  # 吞过, 中毒过, 有过: a past experience
        rule(rf"(喝|吞|吃|误食|误服|误喝|舔|咽)(了|下|进)?.{{0,6}}{CHEM_ZH}"),
        rule(r"(?<!酸)中毒了", unless=r"食物中毒|洗脑|神曲|上瘾|停不下来|单曲循环|游戏"),  # hooked on a song or a game
    ],
    "bleeding": [
        rule(r"\b(bleed\w*|blood)\b[^.;]{0,30}\b(won'?t stop|will not stop|doesn'?t stop|does not stop|not stopping|isn'?t stopping|"
             r"hasn'?t stopped|can'?t stop|keeps? (coming|pouring|gushing|flowing)|everywhere|spurt\w*|gush\w*|pour\w*)|\b(spurt\w*|"
             r"gush\w*|pour\w*)\b[^.;,]{0,10}\bblood|\bcan'?t stop the bleeding|\bbleeding (heavily|badly|a lot|profusely)|"
             r"\b(heavy|severe|massive) bleeding|\blost a lot of blood|\bsoaked through",
             unless=r"\b(period|menstrua\w*|spotting)\b"),
        rule(r"\b(vomit\w*|throwing up|threw up)\b[^.;,]{0,15}\b(blood|coffee grounds?)\b|\b(coughing|coughed) up\b[^.;,]{0,10}\bblood\b",
             unless=r"\b(streaks?|specks?|tinge\w*|little|bit of|spots? of)\b"),
        rule(r"(血|出血|流血)(一直|还在|不停)?(止不住|止不了|不止|停不下来|往外(喷|涌|冒)|喷出来|流个不停|不停地?流)|大量出血|"
             r"血流不止|血流如注|(止不住|止不了)(的)?血|喷血|(一直|不停)(地)?(流血|出血)|(血|出血|流血).{0,10}(止不住|止不了|停不下来)|"
             r"(出血|流血)(很多|非常多|特别多|量很大)",
             unless=r"月经|例假|经期|大姨妈"),
        rule(r"大出血", unless=r"钱|红包|份子|请客|请[^。！？\n]{0,8}吃|老本|双十一|双11|618|购物|剁手|门票|吃土|账单|工资|预算|"
                              r"信用卡|存款|买|花了|月经|例假|经期|大姨妈"),  # money slang: spending "bleeds" the wallet
        rule(r"(吐|呕|咳)(了|出)?(很多|大量|一大口|大口|满口)?(的)?(鲜)?血(?!丝)|呕血",  # "气到吐血": exasperation
             unless=r"(砍|气|输|急|心疼)(到|得)[^。！？\n]{0,3}吐血|(差点|快要?|简直)[^。！？\n]{0,2}吐血"),
    ],
    "breathing": [
        rule(r"\b(can'?t|cannot|can not|unable to|barely) breathe\b", unless=r"\b(nose|nasal|stuffy|congest\w*|blocked)\b"),
        rule(r"\bstruggling (to breathe|for (breath|air))|\bgasping\b|\bfighting for (breath|air)|\bchoking\b(?! hazard| risk)|"
             r"\b(lips?|tongue|fingernails|skin)\b[^.;,]{0,15}\b(blue|bluish|grey|gray)\b|\bface\b[^.;,]{0,10}\bblue\b|\bturning blue|"
             r"\b(severe|bad|serious) (asthma attack|breathing (difficulty|problem|trouble)s?|shortness of breath)|\b(inhaler|puffer|"
             r"nebuli[sz]er)\b[^.;,]{0,20}\b(not|isn'?t|aren'?t|doesn'?t|won'?t) (working|helping|help)|\bcan'?t (speak|talk|say) "
             r"(in )?(full |whole )?sentences|\bribs (are )?(sucking|pulling) in"),
        rule(r"(严重|非常|极度|特别|很)的?呼吸困难|上不来气|憋得(说不出话|脸发紫|脸发青)|(嘴唇|口唇|指甲|皮肤|舌头)(都)?(发紫|发青|青紫|"
             r"变紫|变青|紫了|青了|发绀)|说不出(完整的?)?(话|句子)|(哮喘|气喘)(发作)?.{0,4}(严重|厉害)|(喷雾|喷剂|吸入器|气雾剂).{0,6}"
             r"(不管用|没用|无效|不起作用)|(噎住|呛住|卡住)了?.{0,6}(呼吸|喘气|说话)",
             unless=r"(噎|气|惊|吓|感动|震惊|无语|激动)(得|到)[^。！？\n]{0,3}说不出话"),
        rule(r"窒息", unless=r"(多|忙|累|尴尬|无聊|闷|压抑|烦|沉默|安静)[^。！？\n]{0,6}窒息|(帅|美|好看|甜)(到|得)[^。！？\n]{0,3}窒息|(令|让)人窒息|窒息感|窒息了?家人们|"
                              r"(工作|作业|报告|项目|deadline|ddl|邮件|消息|未读|会议|开会|考试|房贷|老板|领导|上课|老师)[^。！？\n]{0,20}窒息"),
        rule(r"喘不(上|过)气|透不过气", unless=r"压力|工作|学业|作业|鼻塞|鼻子|感冒"),
    ],
}
CATEGORIES = tuple(RULES)

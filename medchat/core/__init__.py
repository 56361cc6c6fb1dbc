"""medchat.core: the seam — errors, paths, config and settings, models, the profile store, the chat
engine (engine/), prompt guarding and quiet output. Everyone may import it (kb/, trainer/ and
medchat.app); it imports none of them.
"""

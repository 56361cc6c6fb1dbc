"""The Textual chat front end. Imported lazily by `medchat chat`; kb/ and trainer/ never import it."""

from twisted.application.service import ServiceMaker

imfed = ServiceMaker("imfed", "imfed.tap", "IM interconnection federation daemon (T/CIIA)", "imfed")
